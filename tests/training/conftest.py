"""Fixtures of the training tests: a tiny page file of white pages with one dark band."""

import pytest

from tests.training.helpers import band_pages, write_page_hdf5


@pytest.fixture(scope='session')
def band_hdf5(tmp_path_factory):
    """32 grayscale band pages at 4, 8 and 16 pixels."""
    return write_page_hdf5(tmp_path_factory.mktemp('pages') / 'bands.hdf5', band_pages(32, 16))
