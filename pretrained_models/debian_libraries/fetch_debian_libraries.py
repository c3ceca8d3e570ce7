"""Fetch the PDFs of three collections of Debian packages, one folder per collection: this model's training data.

    python pretrained_models/debian_libraries/fetch_debian_libraries.py ./data/debian_libraries
    python pretrained_models/debian_libraries/fetch_debian_libraries.py ./data/debian_libraries --collections cards

Each collection is a list of Debian packages, each with the files to take
from it (shell patterns under /usr/share; '*' takes every PDF), and may test
each matching document (DOCUMENT_TESTS: the slides collection takes only
slide decks, the manuals collection leaves them out). Its PDFs go to
<destination>/<collection>/<package>/, so each collection is one folder, one
entry of load_data's `pdf_directory` list (the folder's name is the
collection's name). Uses `apt-get download` (each package once, whichever
collections take from it) and `dpkg-deb -x` (no root, no installation),
keeps each distinct PDF once (copies dropped by content hash, across all
collections), unpacks gzipped PDFs, and writes documents.tsv (collection,
package, version, file, pages, sha256: the documents of this run's
collections) and licenses/<package>.copyright beside the collection folders
(for TeX Live packages also <package>.Licenses: the licence of each TeX
package in it). About 930 MB of packages to download.
"""

import argparse
import fnmatch
import gzip
import hashlib
import pathlib
import shutil
import statistics
import subprocess
import sys
import tempfile

import pypdfium2

EVERY_PDF = ('*',)
TEX_DOCUMENTATION = ('doc/texlive-doc/*',)
COLLECTIONS = {
    # Typeset text: programming manuals and LaTeX package documentation (as in the debian_manuals model).
    'manuals': {'r-doc-pdf': EVERY_PDF, 'octave-doc': EVERY_PDF, 'gnuplot-doc': EVERY_PDF, 'maxima-doc': EVERY_PDF,
                'asymptote-doc': EVERY_PDF, 'texlive-latex-recommended-doc': EVERY_PDF},
    # Slide decks: the example talks and theme demonstrations of beamer and the other LaTeX slide classes.
    'slides': {'texlive-latex-extra-doc': TEX_DOCUMENTATION, 'texlive-publishers-doc': TEX_DOCUMENTATION,
               'texlive-latex-recommended-doc': TEX_DOCUMENTATION, 'texlive-games': TEX_DOCUMENTATION},
    # Full-page pictures: playing cards, Uno cards and mahjong tiles, one PDF each (not the games' manuals).
    'cards': {'texlive-games': ('texlive/texmf-dist/tex/latex/jeuxcartes/*', 'texlive/texmf-dist/tex/latex/mahjong/*')},
}
# Slide decks on paper-sized landscape pages (prosper, pdfslide, pdfscreen, ffslides, ifmslide, sslides, powerdot,
# seminar): the shape of their pages alone does not tell them from landscape manuals and code listings.
SLIDES_ON_PAPER = frozenset(f'doc/texlive-doc/latex/{name}.pdf' for name in (
    'prosper/prosper-tour', 'pdfslide/demo', 'pdfscreen/slide', 'pdfscreen/manual-screen', 'ffslides/ffslides-doc',
    'ifmslide/ifmman', 'sslides/land-sample-slide', 'powerdot-fuberlin/exampleClass',
    'powerdot-fuberlin/exampleStyle', 'seminar/semsamp2'))
SLIDE_WIDTH_PT = (340, 460)   # a beamer frame: 128 mm (363 pt) at 4:3, 160 mm (454 pt) at 16:9 and 16:10
SLIDE_HEIGHT_PT = (240, 345)  # 96 mm (272 pt), 90 mm (255 pt), 100 mm (283 pt), 120 mm (340 pt)
SLIDE_DECK_MIN_PAGES = 3      # fewer: a single frame drawn as a figure of a manual


def is_slide_deck(relative, data):
    """A deck of slides: one of SLIDES_ON_PAPER, or 3+ pages, nearly all landscape, of a beamer frame's size."""
    if relative in SLIDES_ON_PAPER:
        return True
    try:
        document = pypdfium2.PdfDocument(data)
    except pypdfium2.PdfiumError:
        return False
    sizes = [document.get_page_size(index) for index in range(len(document))]
    document.close()
    if len(sizes) < SLIDE_DECK_MIN_PAGES:
        return False
    landscape_share = sum(width > 1.15 * height for width, height in sizes) / len(sizes)
    width, height = statistics.median(size[0] for size in sizes), statistics.median(size[1] for size in sizes)
    return (landscape_share >= 0.9 and SLIDE_WIDTH_PT[0] <= width <= SLIDE_WIDTH_PT[1]
            and SLIDE_HEIGHT_PT[0] <= height <= SLIDE_HEIGHT_PT[1])


# Which of a collection's matching documents it keeps: (path under /usr/share, PDF bytes) -> bool.
DOCUMENT_TESTS = {
    'manuals': lambda relative, data: not is_slide_deck(relative, data),
    'slides': is_slide_deck,
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


def downloaded_package(package, debs):
    """The package's .deb in the debs folder, downloaded the first time a collection asks for it."""
    deb = next(debs.glob(f'{package}_*.deb'), None)
    if deb is None:
        subprocess.run(['apt-get', 'download', package], check=True, cwd=debs)
        deb = next(debs.glob(f'{package}_*.deb'))
    return deb


def fetch_package(package, patterns, keep, collection_folder, work, seen):
    """Unpack one package; write its chosen PDFs that keep() accepts, each once; yield (version, path, digest)."""
    deb = downloaded_package(package, work / 'debs')
    unpacked = work / package
    subprocess.run(['dpkg-deb', '-x', str(deb), str(unpacked)], check=True)
    version = package_version(deb)
    copy_licenses(unpacked, package, collection_folder.parent / 'licenses')
    for source in sorted(unpacked.rglob('*')):
        if source.is_symlink() or not source.is_file() or not source.name.endswith(('.pdf', '.pdf.gz')):
            continue
        relative = str(source.relative_to(unpacked / 'usr' / 'share')).removesuffix('.gz')
        if not any(fnmatch.fnmatch(relative, pattern) for pattern in patterns):
            continue
        data = pdf_bytes(source)
        digest = hashlib.sha256(data).hexdigest()
        if digest in seen or not keep(relative, data):
            continue
        seen.add(digest)
        target = collection_folder / package / relative.replace('/', '__')
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(data)
        yield version, target, digest
    shutil.rmtree(unpacked)


def fetch(destination, collections):
    """Fill destination/<collection>/ for each collection ({name: {package: patterns}}); return documents.tsv's rows."""
    destination = pathlib.Path(destination).expanduser().resolve()
    (destination / 'licenses').mkdir(parents=True, exist_ok=True)
    rows, seen = [], set()
    with tempfile.TemporaryDirectory() as work:
        (pathlib.Path(work) / 'debs').mkdir()
        for collection, packages in collections.items():
            keep = DOCUMENT_TESTS.get(collection, lambda relative, data: True)
            for package, patterns in packages.items():
                for version, target, digest in fetch_package(package, patterns, keep, destination / collection,
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
