"""What a projection run keeps in its run folder, rewritten after every batch so a stopped run resumes where it was.

    projected_latents.npy      float32 [N, latent_size]: one row per finished page, in page order
    projected_pages.npy        uint8 [N, size, size, channels]: the real pages as the model compared them
    projected_collections.json (conditional models) {"collections": [names], "rows": [each page's collection]}
    projected_errors.csv       per page: document, page number, errors of the projection and of its start
    projected_sheet.png        each real page beside its reconstruction (written at the end)
    project_state.json         what was asked (the signature a re-run must match) and how many pages are done

The state is written last, so its `finished` count is never ahead of the
latents on disk (a run killed between two writes loses at most one batch).
"""

import csv
import io
import json
import os

import numpy as np

from deepzine.files import write_atomically, write_json, write_text

LATENTS_FILE = 'projected_latents.npy'
PAGES_FILE = 'projected_pages.npy'
COLLECTIONS_FILE = 'projected_collections.json'
ERRORS_FILE = 'projected_errors.csv'
SHEET_FILE = 'projected_sheet.png'
STATE_FILE = 'project_state.json'
STATE_FORMAT = 1
ERROR_COLUMNS = ('row', 'document', 'page', 'relative_error', 'rms_error_255', 'start_rms_error_255', 'collection')
SHEET_PAIRS_PER_ROW = 4


def read_state(run_folder):
    """The project_state.json of a run folder, or None when there is none (or it is unreadable)."""
    try:
        with open(os.path.join(run_folder, STATE_FILE), encoding='utf-8') as handle:
            state = json.load(handle)
    except (OSError, ValueError):
        return None
    return state if isinstance(state, dict) and state.get('format') == STATE_FORMAT else None


def find_resumable_run(output_directory, signature, run_folder_pattern):
    """The newest run folder whose projection of the same pages, model and settings stopped before the end, or None."""
    if not os.path.isdir(output_directory):
        return None, None
    numbered = sorted(((int(match.group(1)), name) for name in os.listdir(output_directory)
                       if (match := run_folder_pattern.match(name))), reverse=True)
    for _, name in numbered:
        folder = os.path.join(output_directory, name)
        state = read_state(folder)
        if state and state.get('signature') == signature and state.get('finished', 0) < len(state.get('sources', [])):
            return folder, state
    return None, None


def start_run(run_folder, signature, seed, sources, pages):
    """The state of a new run, with the real pages written once at its start."""
    os.makedirs(run_folder, exist_ok=True)
    write_atomically(os.path.join(run_folder, PAGES_FILE), lambda handle: np.save(handle, pages, allow_pickle=False))
    state = {'format': STATE_FORMAT, 'signature': signature, 'seed': seed,
             'sources': [list(source) for source in sources], 'finished': 0, 'results': [], 'collections': None}
    write_json(os.path.join(run_folder, STATE_FILE), state)
    return state


def finished_latents(run_folder, state, latent_size):
    """The latents of the pages a stopped run finished (rows beyond its state's count are dropped)."""
    if not state['finished']:
        return np.zeros((0, latent_size), np.float32)
    latents = np.load(os.path.join(run_folder, LATENTS_FILE), allow_pickle=False)
    return latents[:state['finished']].astype(np.float32)


def save_progress(run_folder, state, latents, collection_names=None):
    """Rewrite the latents, collections and errors of every finished page, then the state."""
    write_atomically(os.path.join(run_folder, LATENTS_FILE), lambda handle: np.save(handle, latents, allow_pickle=False))
    if collection_names:
        write_json(os.path.join(run_folder, COLLECTIONS_FILE),
                   {'collections': list(collection_names), 'rows': [row['collection'] for row in state['results']]})
    table = io.StringIO()
    writer = csv.DictWriter(table, ERROR_COLUMNS, lineterminator='\n')
    writer.writeheader()
    writer.writerows(state['results'])
    write_text(os.path.join(run_folder, ERRORS_FILE), table.getvalue())
    state['finished'] = len(latents)
    write_json(os.path.join(run_folder, STATE_FILE), state)


def result_rows(state, batch, first_row, collection_names=None):
    """Rows of the errors table for a ProjectedBatch whose first page is `first_row`."""
    rows = []
    for offset in range(len(batch.latents)):
        document, page = state['sources'][first_row + offset]
        collection = collection_names[batch.collection_indices[offset]] if collection_names else ''
        rows.append({'row': first_row + offset, 'document': document, 'page': page,
                     'relative_error': round(float(batch.relative_errors[offset]), 5),
                     'rms_error_255': round(float(batch.rms_errors[offset]), 3),
                     'start_rms_error_255': round(float(batch.start_rms_errors[offset]), 3),
                     'collection': collection})
    return rows


def write_sheet(run_folder, real_pages, generated_pages, contrast_stretch=False):
    """projected_sheet.png: pairs of (real page, its reconstruction), SHEET_PAIRS_PER_ROW pairs to a row.

    contrast_stretch: each page stretched to its own darkest..lightest, as the saved pages of sampling are.
    """
    from deepzine.sampling.images import save_grid, to_uint8
    real = to_uint8(np.asarray(real_pages, np.float32) / 127.5 - 1.0, contrast_stretch)
    pairs = np.stack([real, to_uint8(generated_pages, contrast_stretch)], axis=1)
    pairs = pairs.reshape((-1,) + pairs.shape[2:])
    return save_grid(pairs, os.path.join(run_folder, SHEET_FILE), columns=2 * SHEET_PAIRS_PER_ROW)
