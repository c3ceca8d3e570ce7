"""The collections of a page file: what each is named, where a load_data run finds its documents, what the file records.

A load_data run's source key names one collection or a list of them
(`internetarchive_collection: [MBLWHOI, bluesky]`, `pdf_directory: [./manuals,
./music]`, `image_directory: [...]`), each named by its archive identifier or
its folder's name unless `collection_names` renames them. The page file
records them in the attribute `collections` (JSON: a list, in number order, of
{"name", "data_source", "source", "pdf_conversion_program", "pdf_dpi",
"pages"}) and every page's number in `pages/collection`. A file written before
collections existed holds one, named after the source it records.

Names become parts of file names (the sampling stages write
`inference_00000_<name>.png`): letters, digits, '.', '_' and '-', starting
with a letter or digit. A folder's name is made so ('My Scans' -> 'My_Scans');
a name given in collection_names must already be so.
"""

import dataclasses
import json
import os
import re

import yaml

from deepzine.parameters import ConfigError

COLLECTIONS_ATTRIBUTE = 'collections'
COLLECTION_COLUMN = 'collection'
LEGACY_COLLECTION_NAME = 'pages'
IMAGE_FILES = 'image files'  # the pdf_conversion_program recorded for page images (data_source: image_directory)
SOURCE_KEYS = {'internetarchive': 'internetarchive_collection', 'pdf_directory': 'pdf_directory',
               'image_directory': 'image_directory'}
_NAME_PATTERN = re.compile(r'[A-Za-z0-9][A-Za-z0-9._-]*')
_NAME_RULE = 'letters, digits, ".", "_" and "-", starting with a letter or digit (names become parts of file names)'


def is_usable_name(name):
    return isinstance(name, str) and bool(_NAME_PATTERN.fullmatch(name))


def name_of_folder(folder):
    """The collection name a folder gives: its last part, every run of other characters made one '_'."""
    name = re.sub(r'[^A-Za-z0-9._-]+', '_', os.path.basename(os.path.normpath(folder)))
    name = re.sub(r'^[^A-Za-z0-9]+', '', name)
    return name or LEGACY_COLLECTION_NAME


def collection_entries_of(attributes):
    """The collections a page file or segment records, in number order, from its attributes (plain values); a
    file written before collections existed holds one, named after the source it records."""
    if COLLECTIONS_ATTRIBUTE in attributes:
        return [dict(entry) for entry in json.loads(attributes[COLLECTIONS_ATTRIBUTE])]
    data_source = attributes.get('data_source')
    program = attributes.get('pdf_conversion_program')
    if data_source == 'internetarchive':
        config = yaml.safe_load(attributes.get('config') or '') or {}
        source = str(config.get('internetarchive_collection') or '')
        name = source or LEGACY_COLLECTION_NAME
    else:
        source = attributes.get('source_directory') or ''
        name = name_of_folder(source) if source else LEGACY_COLLECTION_NAME
        data_source = data_source or ('image_directory' if program == IMAGE_FILES else 'pdf_directory')
    return [{'name': name, 'data_source': data_source, 'source': source, 'pdf_conversion_program': program,
             'pdf_dpi': attributes.get('pdf_dpi')}]


def collection_names_of(attributes):
    """The names of a page file's collections, in number order, from its attributes (plain values)."""
    return tuple(str(entry['name']) for entry in collection_entries_of(attributes))


@dataclasses.dataclass(frozen=True)
class CollectionSource:
    """One collection a load_data run adds documents to."""
    name: str
    data_source: str         # internetarchive | pdf_directory | image_directory
    source: str              # the folder, or the archive collection identifier
    directory: str           # where its documents are found (for the archive: where its downloads go)
    document_count: int = None  # documents found when the run was planned (None: after the download)

    @property
    def key(self):
        """The config key that names it."""
        return SOURCE_KEYS[self.data_source]

    def entry(self):
        """What the page file records of it (the writer adds what it was made with and its page count)."""
        return {'name': self.name, 'data_source': self.data_source, 'source': self.source}


def _shown(values):
    return f'[{", ".join(map(str, values))}]' if isinstance(values, list) else str(values)


def plan_collections(data_source, sources, collection_names, pdf_directory):
    """CollectionSources for the value of the run's source key (one, or a list), in order; ConfigError naming the
    key and the value for a name that is not usable or given twice.

    A list of archive collections downloads each into <pdf_directory>/<identifier of the collection>/; one
    collection downloads into pdf_directory itself, as it always has.
    """
    key = SOURCE_KEYS[data_source]
    values = sources if isinstance(sources, list) else [sources]
    if data_source == 'internetarchive':
        for identifier in values:
            if not is_usable_name(identifier):
                raise ConfigError(f'{key}={_shown(sources)}: {identifier!r} is not a collection identifier '
                                  '(letters, digits, ".", "_", "-"); put other search terms in internetarchive_query')
        if isinstance(pdf_directory, list):
            raise ConfigError(f'pdf_directory={_shown(pdf_directory)}: the archive\'s downloads go to one folder; '
                              'give one (each collection of a list gets its own folder in it)')
        directories = [os.path.join(pdf_directory, identifier) for identifier in values] if isinstance(
            sources, list) else [pdf_directory]
        names = list(values)
    else:
        directories = list(values)
        names = [name_of_folder(folder) for folder in values]
    if collection_names is not None:
        given = [str(name) for name in collection_names]
        if len(given) != len(values):
            raise ConfigError(f'collection_names={_shown(given)}: {len(given)} names for {len(values)} '
                              f'{key} entries; give one name per entry, in the same order')
        for name in given:
            if not is_usable_name(name):
                raise ConfigError(f'collection_names={_shown(given)}: {name!r} is not usable as a name: {_NAME_RULE}')
        names = given
    repeated = sorted({name for name in names if names.count(name) > 1})
    if repeated:
        if collection_names is not None:
            raise ConfigError(f'collection_names={_shown(names)}: {", ".join(repeated)} given twice; '
                              'give every collection its own name')
        raise ConfigError(f'{key}={_shown(sources)}: two entries are both named {", ".join(repeated)}; '
                          'give them their own names with collection_names: [...], one per entry')
    return tuple(CollectionSource(name, data_source, str(value), directory)
                 for name, value, directory in zip(names, values, directories))
