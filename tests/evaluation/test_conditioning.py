"""The collection matrix: a generator that draws each collection's own real pages conditions; one that draws another
collection's does not, and the log says which."""

import logging

import numpy as np

from deepzine.data.store import PageStore
from deepzine.evaluation.evaluate import evaluate_generator
from deepzine.model.loading import PageGenerator
from tests.training.helpers import two_collection_pages, write_collections_hdf5

LATENT_SIZE = 4


def collection_copier(collections, swap=False):
    """Draws real pages of the collection asked for (of the other one with `swap`), chosen by the latent."""
    names = list(collections)

    def generate_batch(latents, rows):
        pages = []
        for latent, row in zip(np.asarray(latents), np.asarray(rows)):
            source = collections[names[(int(np.argmax(row)) + swap) % len(names)]]
            pages.append(source[int(abs(latent[0]) * 1e6) % len(source)])
        return np.stack(pages).astype(np.float32) / 127.5 - 1

    return PageGenerator(generate_batch, LATENT_SIZE, 16, 1, batch_size=8, description='copier',
                         collection_names=names)


def test_the_matrix_says_whether_each_collection_is_drawn_as_itself(tmp_path, caplog):
    collections = two_collection_pages(48, 16)
    path = write_collections_hdf5(tmp_path / 'two.hdf5', collections)
    with PageStore(path) as store, caplog.at_level(logging.INFO, logger='deepzine'):
        right = evaluate_generator(collection_copier(collections), store, 16, str(tmp_path / 'right'), image_num=16,
                                   seed=0)['swd']['collections']
        wrong = evaluate_generator(collection_copier(collections, swap=True), store, 16, str(tmp_path / 'wrong'),
                                   image_num=16, seed=0)['swd']['collections']
    assert right['conditions'] is True and wrong['conditions'] is False
    assert right['image_num'] == 16 and right['real_vs_real'] == wrong['real_vs_real']
    for row in range(2):  # far nearer to the collection drawn than to the other: the pages differ plainly
        assert 3 * right['generated_vs_real'][row][row] < right['generated_vs_real'][row][1 - row]
        assert 3 * wrong['generated_vs_real'][row][1 - row] < wrong['generated_vs_real'][row][row]
    assert 'the model conditions: each collection\'s pages are nearest to that collection\'s real pages' in caplog.text
    assert 'the model does not condition yet: the pages drawn for stripes, blocks are nearer' in caplog.text
