"""Evaluate one generator against the real pages: SWD with its real-vs-real baseline, the memorization check, JSON and TensorBoard.

`evaluate_generator` is the one entry point, called by the `evaluate` stage and
by training at the end of each phase (evaluate_during_training). It writes into
`<log_dir>/metrics/`:

    swd_<size>_<tag>.json        SWD x1e3 per pyramid level and mean: generated vs real, real vs real
    nearest_<size>_<tag>.json    nearest real page of each generated page, and of real pages
    nearest_<size>_<tag>.png     generated (left) | nearest real (right), 4 pairs per row, pages at <= 512px
    events.out.tfevents.*        the same numbers as TensorBoard scalars

where <tag> is `step<step>` during training and the local time otherwise.
A conditional model's generated pages are drawn for the collections of the
real pages they are compared with, and its SWD JSON also holds the matrix of
deepzine.evaluation.conditioning: each collection's generated pages against
each collection's real ones.

Sample sizes: n generated pages against n real pages (set A), and the baseline
n other real pages (set B, disjoint from A) against the same A, so both numbers
carry the same sample-size bias and can be compared directly. With fewer than
2n pages in the HDF5, n shrinks to half the collection (with a warning).
All three sets take their patches at the same random positions (image i of
each set alike) and both comparisons use the same directions: common random
numbers, so the two numbers differ by the pages, not by the dice. A fixed seed
picks the same real pages, patches, latents and directions every time, so
evaluations of successive checkpoints differ only by the model.

The TensorBoard writer (and with it TensorFlow) is imported where it writes: the params command imports this module.
"""

import logging
import os
import time

import numpy as np
from tqdm import tqdm

from deepzine.evaluation import nearest, swd
from deepzine.evaluation.conditioning import collection_matrix, describe_matrix
from deepzine.files import write_json
from deepzine.parameters import ConfigError
from deepzine.sampling.images import to_uint8

logger = logging.getLogger(__name__)

FORMAT_VERSION = 1
METRICS_FOLDER = 'metrics'
REAL_READ_CHUNK_PAGES = 64
GRID_PAIRS_PER_ROW = 4
GRID_PAGE_SIZE_LIMIT = 512  # 32 pairs of 1024px pages would make a 200 MB picture

# One independent random stream per purpose (SeedSequence.spawn), so changing one count leaves the others alone.
_STREAMS = ('real_pages', 'patches', 'latents', 'directions', 'memorization')


def metrics_directory(log_dir):
    return os.path.join(log_dir, METRICS_FOLDER)


def _real_descriptors(store, size, indices, seed_sequence):
    collector = swd.PyramidDescriptors(len(indices), size, np.random.default_rng(seed_sequence))
    for start in tqdm(range(0, len(indices), REAL_READ_CHUNK_PAGES), desc='real pages', unit='chunk', disable=None):
        collector.add(store.read(size, indices[start:start + REAL_READ_CHUNK_PAGES]))
    return collector.finish()


def _generate(page_generator, latents, collections, swd_num, keep_num, seed_sequence):
    """Generate one page per latent (and row of `collections`, None: unconditional) in batches: descriptors of the
    first swd_num (or None), uint8 copies of the first keep_num."""
    collector = swd.PyramidDescriptors(swd_num, page_generator.size, np.random.default_rng(seed_sequence)) if swd_num else None
    kept = []
    for start, pages in page_generator.batches(latents, collections, progress_label='generated pages'):
        pages = to_uint8(pages)
        if collector is not None and start < swd_num:
            collector.add(pages[:swd_num - start])
        if start < keep_num:
            kept.append(pages[:keep_num - start])
    descriptors = collector.finish() if collector is not None else None
    return descriptors, (np.concatenate(kept) if kept else None)


def _check_inputs(page_generator, store, size, image_num):
    if page_generator.size != size:
        raise ConfigError(f'gan_output_size={size}: the generator makes {page_generator.size}x{page_generator.size} pages')
    if size not in store.sizes:
        raise ConfigError(f'data_hdf5={store.path} holds sizes {store.sizes[0]}..{store.sizes[-1]}: evaluating the {size}px '
                          f'generator needs real pages of {size}px (re-run load_data with data_output_size: {size})')
    if page_generator.channels != store.channels:
        raise ConfigError(f'the generator makes {page_generator.channels}-channel pages, the HDF5 holds '
                          f'{store.channels}-channel pages: evaluate against the data it was trained on')
    if image_num and store.page_count < 2:
        raise ConfigError(f'evaluation_image_num={image_num}: the HDF5 holds {store.page_count} page(s); the SWD needs '
                          f'at least 2 (half of them form the real-vs-real baseline)')
    if page_generator.collection_names and tuple(page_generator.collection_names) != tuple(store.collection_names):
        raise ConfigError(f'data_hdf5={store.path} holds the collections {", ".join(store.collection_names)}, but the '
                          f'model was trained on {", ".join(page_generator.collection_names)}: evaluate against the '
                          f'data it was trained on')


def _levels_for_json(result):
    return {'levels': {str(level_size): value for level_size, value in result['levels'].items()}, 'mean': result['mean']}


def _real_sets(store, size, pair_num, streams):
    """Descriptors of real set A, the baseline SWD of a disjoint real set B against A, and A's page indices."""
    chosen = np.random.default_rng(streams['real_pages']).choice(store.page_count, 2 * pair_num, replace=False)
    real_a, real_b = np.sort(chosen[:pair_num]), np.sort(chosen[pair_num:])
    real_descriptors = _real_descriptors(store, size, real_a, streams['patches'])
    other_descriptors = _real_descriptors(store, size, real_b, streams['patches'])
    baseline = swd.swd_between(other_descriptors, real_descriptors, np.random.default_rng(streams['directions']))
    return real_descriptors, baseline, real_a  # B's descriptors go now: two sets in memory at most


def _generated_collections(page_generator, store, real_indices, count, rng):
    """The collections to generate `count` pages for: those of the real set A they are compared with, then drawn
    as the page file holds them (None for an unconditional generator)."""
    if not page_generator.collection_names:
        return None
    numbers = store.collection_numbers
    drawn = numbers[real_indices] if len(real_indices) else np.zeros(0, np.int64)
    extra = numbers[rng.choice(store.page_count, max(0, count - len(drawn)))]
    return page_generator.one_hot(np.concatenate([drawn, extra])[:count])


def _swd_report(header, generated_vs_real, real_vs_real, pair_num, image_num, seconds):
    size = header['size']
    return {**header, 'metric': 'multiscale_sliced_wasserstein_distance_x1e3',
            'image_num': pair_num, 'image_num_requested': image_num,
            'settings': {'pyramid_sizes': swd.level_sizes(size), 'patch_size': swd.patch_size_for(swd.level_sizes(size)[-1]),
                         'patches_per_image': swd.PATCHES_PER_IMAGE, 'directions_per_repeat': swd.DIRECTIONS_PER_REPEAT,
                         'direction_repeats': swd.DIRECTION_REPEATS,
                         'patch_positions': 'the same random positions in all three sets (image i of each alike)',
                         'descriptor_normalization': 'per channel, over each set on its own (as the reference)'},
            'generated_vs_real': _levels_for_json(generated_vs_real), 'real_vs_real': _levels_for_json(real_vs_real),
            'seconds': round(seconds, 2)}


def _median_or_none(values):
    return float(np.median(values)) if len(values) else None


def _sources(store, indices):
    """Where each real page came from, so a copied page can be looked up in its PDF."""
    return [{'identifier': identifier, 'file': file, 'page_number': page_number}
            for identifier, file, page_number in store.provenance(indices)]


def _nearest_report(header, store, check, grid_name, seconds):
    generated_distances, real_distances = check['generated_distances'], check['real_distances']
    real_floor = float(np.min(real_distances)) if len(real_distances) else None
    generated_sources = _sources(store, check['generated_nearest_indices'])
    return {**header, 'check': 'nearest_real_page', 'compare_size': check['compare_size'],
            'distance': 'root mean square pixel difference in 0-255 units at compare_size x compare_size',
            'grid': grid_name, 'grid_layout': f'generated (left) | nearest real (right), {GRID_PAIRS_PER_ROW} pairs per row, '
                                              f'pages at {min(header["size"], GRID_PAGE_SIZE_LIMIT)}px',
            'generated': [{'nearest_real_index': int(index), 'nearest_real_source': source, 'distance': float(distance)}
                          for index, source, distance in zip(check['generated_nearest_indices'], generated_sources,
                                                             generated_distances)],
            'real_to_real': [{'real_index': int(query), 'nearest_real_index': int(index), 'distance': float(distance)}
                             for query, index, distance in zip(check['real_query_indices'], check['real_nearest_indices'],
                                                               real_distances)],
            'summary': {'generated_median_distance': _median_or_none(generated_distances),
                        'generated_min_distance': float(np.min(generated_distances)),
                        'real_to_real_median_distance': _median_or_none(real_distances),
                        'real_to_real_min_distance': real_floor,
                        'generated_below_real_to_real_min': None if real_floor is None else int(np.sum(generated_distances < real_floor))},
            'seconds': round(seconds, 2)}


def _check_memorization(header, store, kept_pages, memorization_num, rng, folder, tag):
    """Run the nearest-page check, write its grid and JSON, log the summary; returns the report."""
    started = time.perf_counter()
    size = header['size']
    check = nearest.memorization_check(store, kept_pages, memorization_num, rng)
    grid_name = f'nearest_{size}_{tag}.png'
    grid_size = min(size, GRID_PAGE_SIZE_LIMIT)
    nearest_pages = nearest.read_pages(store, grid_size, check['generated_nearest_indices'])
    nearest.save_side_by_side(nearest.downsample(kept_pages, grid_size), nearest_pages, os.path.join(folder, grid_name),
                              GRID_PAIRS_PER_ROW)
    report = _nearest_report(header, store, check, grid_name, time.perf_counter() - started)
    write_json(os.path.join(folder, f'nearest_{size}_{tag}.json'), report)
    summary = report['summary']
    real_median = summary['real_to_real_median_distance']
    logger.info('nearest real page at %dpx (RMS, 0-255): generated median %.1f, real-to-real median %s; %s of %d '
                'generated pages nearer than any real pair; see %s', check['compare_size'],
                summary['generated_median_distance'], 'n/a' if real_median is None else f'{real_median:.1f}',
                summary['generated_below_real_to_real_min'], memorization_num, os.path.join(folder, grid_name))
    return report


def _write_tensorboard(folder, step, size, swd_report, nearest_report):
    """Scalars under `swd_x1e3_<size>/...` and `nearest_<size>/...`: one TensorBoard section per model size."""
    from deepzine.tensorboard import EventWriter
    values = {}
    if swd_report:
        for comparison in ('generated_vs_real', 'real_vs_real'):
            values[f'swd_x1e3_{size}/{comparison}_mean'] = swd_report[comparison]['mean']
            for level_size, value in swd_report[comparison]['levels'].items():
                values[f'swd_x1e3_{size}/{comparison}_level_{level_size}'] = value
        matrix = swd_report.get('collections')
        for row, name in enumerate(matrix['collections'] if matrix else []):
            values[f'swd_x1e3_{size}_collections/{name}_own'] = matrix['generated_vs_real'][row][row]
            values[f'swd_x1e3_{size}_collections/{name}_real_vs_real'] = matrix['real_vs_real'][row]
            for column, other in enumerate(matrix['collections']):
                values[f'swd_x1e3_{size}_matrix/{name}_vs_{other}'] = matrix['generated_vs_real'][row][column]
    if nearest_report:
        values.update({f'nearest_{size}/{name}': value for name, value in nearest_report['summary'].items() if value is not None})
    events = EventWriter(folder)
    events.scalars(values, step)
    events.close()


def evaluate_generator(page_generator, store, size, log_dir, step=None, image_num=1000, seed=0, memorization_num=0):
    """SWD of `image_num` generated pages (+ real-vs-real baseline) and the nearest-page check for `memorization_num`.

    page_generator: deepzine.model.loading.PageGenerator of `size`; store: an open
    deepzine.data.store.PageStore; step: the training step (None for a stand-alone
    evaluation: files are tagged with the time, TensorBoard gets step 0); seed:
    int, or None to draw one (recorded in the JSON). Either count may be 0 to
    skip that part. Returns {'swd': report or None, 'nearest': report or None},
    the dicts written as JSON.
    """
    _check_inputs(page_generator, store, size, image_num)
    if seed is None:
        seed = int(np.random.SeedSequence().entropy % 2**63)
        logger.info('evaluation_seed not set: drew %d (recorded in the JSON; set it to repeat this evaluation)', seed)
    streams = dict(zip(_STREAMS, np.random.SeedSequence(seed).spawn(len(_STREAMS))))
    folder = metrics_directory(log_dir)
    os.makedirs(folder, exist_ok=True)
    started, started_at = time.perf_counter(), time.localtime()
    tag = f'step{step}' if step is not None else time.strftime('%Y%m%d-%H%M%S', started_at)
    header = {'format_version': FORMAT_VERSION, 'size': size, 'step': step,
              'created': time.strftime('%Y-%m-%dT%H:%M:%S', started_at), 'seed': seed,
              'model': page_generator.description, 'data_hdf5': store.path}

    pair_num = min(image_num, store.page_count // 2)
    logger.info('evaluating %s at %dpx: SWD over %d pages, nearest real page of %d', page_generator.description, size,
                pair_num, memorization_num)
    if pair_num < image_num:
        logger.warning('evaluation_image_num=%d: the HDF5 holds %d pages, so the SWD compares %d generated pages with '
                       '%d real ones, and %d real with %d others', image_num, store.page_count, *[pair_num] * 4)
    real_descriptors, baseline, real_indices = (_real_sets(store, size, pair_num, streams) if pair_num
                                                else (None, None, np.zeros(0, np.int64)))
    count = max(pair_num, memorization_num)
    latents = np.random.default_rng(streams['latents']).standard_normal(
        (count, page_generator.latent_size)).astype(np.float32)
    collections = _generated_collections(page_generator, store, real_indices, count,
                                         np.random.default_rng(streams['memorization']))
    generated_descriptors, kept_pages = _generate(page_generator, latents, collections, pair_num, memorization_num,
                                                  streams['patches'])

    swd_report = nearest_report = None
    if pair_num:
        # the baseline's direction stream again: both comparisons project on identical directions
        generated_vs_real = swd.swd_between(generated_descriptors, real_descriptors, np.random.default_rng(streams['directions']))
        swd_report = _swd_report(header, generated_vs_real, baseline, pair_num, image_num, time.perf_counter() - started)
        logger.info('SWD x1e3 at %dpx over %d pages: generated vs real %.2f, real vs real %.2f (levels %s)', size, pair_num,
                    generated_vs_real['mean'], baseline['mean'],
                    ', '.join(f'{level}: {value:.2f}' for level, value in generated_vs_real['levels'].items()))
    del real_descriptors, generated_descriptors
    if swd_report and page_generator.collection_names:
        swd_report['collections'] = collection_matrix(page_generator, store, size, image_num, streams)
        for line in describe_matrix(swd_report['collections']) if swd_report['collections'] else []:
            logger.info(line)
    if swd_report:
        write_json(os.path.join(folder, f'swd_{size}_{tag}.json'), swd_report)
    if memorization_num:
        nearest_report = _check_memorization(header, store, kept_pages, memorization_num,
                                             np.random.default_rng(streams['memorization']), folder, tag)
    _write_tensorboard(folder, step if step is not None else 0, size, swd_report, nearest_report)
    return {'swd': swd_report, 'nearest': nearest_report}
