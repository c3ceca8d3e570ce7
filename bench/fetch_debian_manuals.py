"""Fetch the PDF manuals of Debian documentation packages into a folder: the real pages of the guard runs.

The training data of the retired debian_manuals model (README.md, "The shipped
model"); bench/README.md's collapse-guard runs take five of its packages.

    python bench/fetch_debian_manuals.py ~/debian_manuals

Uses `apt-get download` and `dpkg-deb -x` (no root, no installation), keeps
each distinct PDF once (symlinked copies dropped by content hash), unpacks
gzipped PDFs, and writes documents.tsv (package, version, file, pages, sha256)
and licenses/<package>.copyright beside the PDFs. The `pdf_directory` source
of load_data takes the folder from there.
"""

import argparse
import gzip
import hashlib
import pathlib
import shutil
import subprocess
import sys
import tempfile

PACKAGES = ['r-doc-pdf', 'gnuplot-doc', 'asymptote-doc', 'octave-doc', 'maxima-doc',
            'texlive-latex-recommended-doc', 'texlive-publishers-doc']


def package_version(deb_path):
    return subprocess.run(['dpkg-deb', '--field', str(deb_path), 'Version'], check=True, capture_output=True,
                          text=True).stdout.strip()


def pdf_bytes(path):
    data = path.read_bytes()
    return gzip.decompress(data) if path.name.endswith('.pdf.gz') else data


def count_pages(path):
    import pypdfium2
    try:
        return len(pypdfium2.PdfDocument(str(path)))
    except pypdfium2.PdfiumError:
        return 0


def fetch(destination, packages):
    destination = pathlib.Path(destination).expanduser().resolve()
    (destination / 'licenses').mkdir(parents=True, exist_ok=True)
    rows, seen = [], set()
    with tempfile.TemporaryDirectory() as work:
        work = pathlib.Path(work)
        subprocess.run(['apt-get', 'download', *packages], check=True, cwd=work)
        for package in packages:
            deb = next(work.glob(f'{package}_*.deb'))
            unpacked = work / package
            subprocess.run(['dpkg-deb', '-x', str(deb), str(unpacked)], check=True)
            version = package_version(deb)
            for copyright_file in unpacked.glob('usr/share/doc/*/copyright'):
                shutil.copyfile(copyright_file, destination / 'licenses' / f'{package}.copyright')
                break
            for source in sorted(unpacked.rglob('*')):
                if source.is_symlink() or not source.is_file() or not source.name.endswith(('.pdf', '.pdf.gz')):
                    continue
                data = pdf_bytes(source)
                digest = hashlib.sha256(data).hexdigest()
                if digest in seen:
                    continue
                seen.add(digest)
                relative = source.relative_to(unpacked / 'usr' / 'share')
                target = destination / package / '__'.join(relative.parts).removesuffix('.gz')
                target.parent.mkdir(parents=True, exist_ok=True)
                target.write_bytes(data)
                rows.append((package, version, str(target.relative_to(destination)), count_pages(target), digest))
    with open(destination / 'documents.tsv', 'w', encoding='utf-8') as table:
        table.write('package\tversion\tfile\tpages\tsha256\n')
        for row in rows:
            table.write('\t'.join(map(str, row)) + '\n')
    pages = sum(row[3] for row in rows)
    print(f'{len(rows)} documents, {pages} pages from {len(packages)} packages in {destination}')
    return rows


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('destination', help='folder to fill with PDFs (becomes pdf_directory)')
    parser.add_argument('--packages', nargs='+', default=PACKAGES, help='Debian packages to take PDFs from')
    args = parser.parse_args(argv)
    if shutil.which('apt-get') is None or shutil.which('dpkg-deb') is None:
        print('error: needs apt-get and dpkg-deb (a Debian or Ubuntu machine)', file=sys.stderr)
        return 2
    fetch(args.destination, args.packages)
    return 0


if __name__ == '__main__':
    sys.exit(main())
