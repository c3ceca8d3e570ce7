"""Fixtures: a small HDF5 of synthetic pages with a planted duplicate."""

import numpy as np
import pytest

from tests.evaluation.pages import synthetic_pages, write_page_hdf5


@pytest.fixture
def pages_hdf5(tmp_path):
    """40 RGB pages at 32x32 with pages 3 and 30 identical (a planted duplicate); returns (path, pages)."""
    pages = synthetic_pages(40, 32, 3, np.random.default_rng(7))
    pages[30] = pages[3]
    return write_page_hdf5(tmp_path / 'pages.hdf5', pages), pages
