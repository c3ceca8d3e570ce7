"""Fetch the PDFs of four collections of Debian packages, one folder per collection: this model's training data.

    python pretrained_models/debian_libraries/fetch_debian_libraries.py ./data/debian_libraries
    python pretrained_models/debian_libraries/fetch_debian_libraries.py ./data/debian_libraries --collections cards music

Each collection is a list of Debian packages, each with the files to take
from it (shell patterns under /usr/share; '*' takes every PDF). Its PDFs go to
<destination>/<collection>/<package>/, so each collection is one folder, one
entry of load_data's `pdf_directory` list (the folder's name is the
collection's name). Uses `apt-get download` and `dpkg-deb -x` (no root, no
installation), keeps each distinct PDF once (copies dropped by content hash,
across all collections), unpacks gzipped PDFs, and writes documents.tsv
(collection, package, version, file, pages, sha256: the documents of this
run's collections) and licenses/<package>.copyright beside the collection
folders (for TeX Live packages also <package>.Licenses: the licence of each
TeX package in it). About 390 MB of packages to download.
"""

import argparse
import fnmatch
import gzip
import hashlib
import pathlib
import shutil
import subprocess
import sys
import tempfile

import pypdfium2

EVERY_PDF = ('*',)
COLLECTIONS = {
    # Typeset text: programming manuals and LaTeX package documentation (as in the debian_manuals model).
    'manuals': {'r-doc-pdf': EVERY_PDF, 'octave-doc': EVERY_PDF, 'gnuplot-doc': EVERY_PDF, 'maxima-doc': EVERY_PDF,
                'asymptote-doc': EVERY_PDF, 'texlive-latex-recommended-doc': EVERY_PDF},
    # Diagrams, plots and colour: the manuals of TikZ/PGF and of every other TeX drawing package.
    'pictures': {'texlive-pictures-doc': EVERY_PDF},
    # Music notation: LilyPond's manuals that are mostly music examples, and its example scores.
    'music': {'lilypond-doc-pdf': tuple(f'doc/lilypond/html/Documentation/{name}' for name in (
        'notation.pdf', 'snippets.pdf', 'learning.pdf', 'music-glossary.pdf', 'ly-examples/*'))},
    # Full-page pictures: playing cards, Uno cards and mahjong tiles, one PDF each (not the games' manuals).
    'cards': {'texlive-games': ('texlive/texmf-dist/tex/latex/jeuxcartes/*', 'texlive/texmf-dist/tex/latex/mahjong/*')},
}


def package_version(deb_path):
    return subprocess.run(['dpkg-deb', '--field', str(deb_path), 'Version'], check=True, capture_output=True,
                          text=True).stdout.strip()


def pdf_bytes(path):
    data = path.read_bytes()
    return gzip.decompress(data) if path.name.endswith('.pdf.gz') else data


def count_pages(path):
    try:
        return len(pypdfium2.PdfDocument(str(path)))
    except pypdfium2.PdfiumError:
        return 0


def copy_licenses(unpacked, package, licenses):
    """The package's copyright file, and TeX Live's list of licences per TeX package where there is one.

    Only real files count: a symlink could point outside the unpacked tree.
    """
    doc = unpacked / 'usr' / 'share' / 'doc' / package
    for name, target in (('copyright', f'{package}.copyright'), ('Licenses.gz', f'{package}.Licenses')):
        source = doc / name
        if source.is_file() and not source.is_symlink():
            data = source.read_bytes()
            (licenses / target).write_bytes(gzip.decompress(data) if name.endswith('.gz') else data)
    if not (licenses / f'{package}.copyright').exists():
        print(f'warning: {package} has no copyright file of its own', file=sys.stderr)


def fetch_package(package, patterns, collection_folder, work, seen):
    """Download and unpack one package; write its chosen PDFs not seen before; yield (version, path, digest)."""
    subprocess.run(['apt-get', 'download', package], check=True, cwd=work)
    deb = next(work.glob(f'{package}_*.deb'))
    unpacked = work / package
    subprocess.run(['dpkg-deb', '-x', str(deb), str(unpacked)], check=True)
    version = package_version(deb)
    copy_licenses(unpacked, package, collection_folder.parent / 'licenses')
    for source in sorted(unpacked.rglob('*')):
        if source.is_symlink() or not source.is_file() or not source.name.endswith(('.pdf', '.pdf.gz')):
            continue
        relative = source.relative_to(unpacked / 'usr' / 'share')
        if not any(fnmatch.fnmatch(str(relative).removesuffix('.gz'), pattern) for pattern in patterns):
            continue
        data = pdf_bytes(source)
        digest = hashlib.sha256(data).hexdigest()
        if digest in seen:
            continue
        seen.add(digest)
        target = collection_folder / package / '__'.join(relative.parts).removesuffix('.gz')
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(data)
        yield version, target, digest
    shutil.rmtree(unpacked)
    deb.unlink()


def fetch(destination, collections):
    """Fill destination/<collection>/ for each collection ({name: {package: patterns}}); return documents.tsv's rows."""
    destination = pathlib.Path(destination).expanduser().resolve()
    (destination / 'licenses').mkdir(parents=True, exist_ok=True)
    rows, seen = [], set()
    with tempfile.TemporaryDirectory() as work:
        for collection, packages in collections.items():
            for package, patterns in packages.items():
                for version, target, digest in fetch_package(package, patterns, destination / collection,
                                                             pathlib.Path(work), seen):
                    rows.append((collection, package, version, str(target.relative_to(destination)),
                                 count_pages(target), digest))
            documents = [row for row in rows if row[0] == collection]
            print(f'{collection}: {len(documents)} documents, {sum(row[4] for row in documents)} pages')
    with open(destination / 'documents.tsv', 'w', encoding='utf-8') as table:
        table.write('collection\tpackage\tversion\tfile\tpages\tsha256\n')
        for row in rows:
            table.write('\t'.join(map(str, row)) + '\n')
    print(f'{len(rows)} documents, {sum(row[4] for row in rows)} pages in {destination}')
    return rows


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('destination', help='folder to fill with one folder of PDFs per collection')
    parser.add_argument('--collections', nargs='+', choices=list(COLLECTIONS), default=list(COLLECTIONS),
                        help='which collections to fetch (default: all)')
    args = parser.parse_args(argv)
    if shutil.which('apt-get') is None or shutil.which('dpkg-deb') is None:
        print('error: needs apt-get and dpkg-deb (a Debian or Ubuntu machine)', file=sys.stderr)
        return 2
    fetch(args.destination, {name: COLLECTIONS[name] for name in args.collections})
    return 0


if __name__ == '__main__':
    sys.exit(main())
