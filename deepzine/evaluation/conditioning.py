"""Does a conditional model draw each collection's pages? The SWD of pages generated for every collection against
the real pages of every collection: a matrix whose rows are the collections asked for and columns the real ones.

The diagonal is each collection's own SWD, to be read against that collection's
real-vs-real baseline beside it. A model conditions when each row's smallest
value is on the diagonal: the pages it draws for a collection are nearer to
that collection's pages than to any other's. Every cell compares the same
number of pages (half the smallest collection, at most evaluation_image_num),
so the cells compare with one another; every set takes its patches at the same
positions and every comparison projects on the same directions, as in
deepzine.evaluation.evaluate.
"""

import logging

import numpy as np

from deepzine.evaluation import swd
from deepzine.sampling.images import to_uint8

logger = logging.getLogger(__name__)


def _descriptors(store, size, indices, patch_seed):
    collector = swd.PyramidDescriptors(len(indices), size, np.random.default_rng(patch_seed))
    collector.add(store.read(size, np.sort(indices)))
    return collector.finish()


def _generated_descriptors(page_generator, collection, count, latent_seed, patch_seed):
    latents = np.random.default_rng(latent_seed).standard_normal((count, page_generator.latent_size)).astype(np.float32)
    collector = swd.PyramidDescriptors(count, page_generator.size, np.random.default_rng(patch_seed))
    for _, pages in page_generator.batches(latents, page_generator.one_hot([collection] * count)):
        collector.add(to_uint8(pages))
    return collector.finish()


def collection_matrix(page_generator, store, size, image_num, streams):
    """{'collections', 'image_num', 'generated_vs_real' [rows: generated for, columns: real of], 'real_vs_real'
    (each collection's baseline), 'conditions'} for a conditional PageGenerator and an open PageStore of the same
    collections; `streams` are the evaluation's seed sequences by purpose."""
    names, numbers = page_generator.collection_names, store.collection_numbers
    pages_of = [np.flatnonzero(numbers == collection) for collection in range(len(names))]
    count = min(image_num, min(len(pages) for pages in pages_of) // 2)
    if count < 1:
        logger.warning('the collection matrix needs two pages of every collection: skipped')
        return None
    chooser = np.random.default_rng(streams['real_pages'].spawn(1)[0])
    real, baselines = [], []
    for pages in pages_of:
        chosen = chooser.choice(pages, 2 * count, replace=False)
        real.append(_descriptors(store, size, chosen[:count], streams['patches']))
        other = _descriptors(store, size, chosen[count:], streams['patches'])
        baselines.append(swd.swd_between(other, real[-1], np.random.default_rng(streams['directions']))['mean'])
    matrix = []
    for collection in range(len(names)):
        generated = _generated_descriptors(page_generator, collection, count, streams['latents'], streams['patches'])
        matrix.append([swd.swd_between(generated, target, np.random.default_rng(streams['directions']))['mean']
                       for target in real])
    conditions = all(int(np.argmin(row)) == index for index, row in enumerate(matrix))
    return {'collections': list(names), 'image_num': count, 'generated_vs_real': matrix, 'real_vs_real': baselines,
            'conditions': conditions}


def describe_matrix(report):
    """Log lines: the matrix as a table, each collection's own SWD against its baseline, and the verdict."""
    names = report['collections']
    width = max(12, *(len(name) + 2 for name in names))
    lines = [f'SWD x1e3 of pages generated for each collection (rows) against each collection\'s real pages (columns), '
             f'{report["image_num"]} pages each:',
             ' ' * width + ''.join(f'{name:>{width}}' for name in names) + f'{"real vs real":>{width + 2}}']
    for name, row, baseline in zip(names, report['generated_vs_real'], report['real_vs_real']):
        lines.append(f'{name:<{width}}' + ''.join(f'{value:>{width}.2f}' for value in row) + f'{baseline:>{width + 2}.2f}')
    misplaced = [name for index, (name, row) in enumerate(zip(names, report['generated_vs_real']))
                 if int(np.argmin(row)) != index]
    lines.append('the model conditions: each collection\'s pages are nearest to that collection\'s real pages'
                 if report['conditions'] else
                 f'the model does not condition yet: the pages drawn for {", ".join(misplaced)} are nearer to another '
                 f'collection\'s real pages than to their own')
    return lines
