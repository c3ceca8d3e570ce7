"""Page files for tests, written by the real PageWriter exactly as the load_data stage writes them."""

import h5py
import numpy as np

from deepzine.data.squaring import build_pyramid
from deepzine.data.writer import PageWriter


def write_page_hdf5(path, pages):
    """A finished DeepZine page file holding `pages` (uint8 [N, S, S, C]) at every size 4..S, as one document."""
    schema = {'output_size': pages.shape[1], 'channels': pages.shape[3], 'square_mode': 'stretch', 'pdf_dpi': 72,
              'pdf_conversion_program': 'pypdfium2'}
    writer = PageWriter(str(path), schema, attributes={})
    provenance = [('synthetic', 'synthetic.pdf', number + 1) for number in range(len(pages))]
    writer.append_pages(build_pyramid(pages), provenance)
    writer.commit_document('synthetic.pdf', size_bytes=0, pages_written=len(pages), pages_skipped=0, status='packed')
    return writer.finish()


def overwrite_chunk(path, dataset_name, chunk_index, seed=0):
    """Overwrite exactly the stored bytes of one chunk with random bytes, as a disk fault would."""
    with h5py.File(path, 'r') as handle:
        info = handle[dataset_name].id.get_chunk_info(chunk_index)
    with open(path, 'r+b') as file:
        file.seek(info.byte_offset)
        file.write(np.random.default_rng(seed).integers(0, 256, info.size, dtype=np.uint8).tobytes())
