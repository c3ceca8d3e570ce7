"""Projection: how well and how fast pages are found inside a trained model, and what each setting buys.

    python bench/bench_projection.py --unseen /work/data/unseen_pages              # the shipped model, its manuals
    python bench/bench_projection.py --unseen DIR --model pretrained_models/NEW/64  # another model: one argument

A conditional model is projected with one collection held fixed
(--collection, default its first): the unseen pages are of one kind, and
trying every collection, as the project stage does, would multiply the time
by the number of collections without telling more about the optimiser.

--unseen is a folder of PDFs the model never saw (documents listed in the
model's documents.tsv, one folder above its size folders, are left out by
their sha256). For the shipped model: `apt-get download texlive-humanities-doc
&& dpkg-deb -x texlive-humanities-doc_*.deb DIR` (LaTeX package manuals, the
kind the model was trained on, from a package it was not trained on).

Sections (--sections picks some):
  recovery  pages the model generated, projected from their pixels alone: the relative error
            (|generated - page| / |page - its mean|), which should be under 5 %
  real      one page from each of --real-pages unseen documents: pixel RMS error of the projection
            over that of the nearest of 1,000 random samples; writes bench/figures/projection_sheet.png
  steps     mean errors after 25, 50, 100, 200 and 400 steps (generated and real pages)
  seen      the same ratio on --real-pages pages the model trained on (--seen: its page file), of the held
            collection: no better than on unseen pages means the model's reach limits projection, not generalising
  ceiling   the same ratio for the unseen pages themselves, blurred by 0.5 to 4 px: how sharp a model must draw
            to reach 0.7 (no projection: quick)
  contrast  how much contrast the model's pages have against the unseen pages' (no projection: quick)
  settings  each default against its alternatives on 8 generated and 8 real pages, and the optimiser
            (L-BFGS per page) against Adam with StyleGAN2's schedule and against L-BFGS of the batch as one problem, pixels only
Speed (pages/s) is printed with every row: two CPU cores, batch 16 unless said.
"""

import argparse
import csv
import dataclasses
import hashlib
import os
import sys
import time

os.environ.setdefault('TF_CPP_MIN_LOG_LEVEL', '2')
REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, REPO)

import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

from deepzine.model.loading import locate_model  # noqa: E402
from deepzine.sampling.lbfgs import BatchLbfgs  # noqa: E402
from deepzine.sampling.page_input import find_page_documents, read_user_pages  # noqa: E402
from deepzine.sampling.projection import (ProjectionSettings, Projector, relative_errors, rms_errors_255,  # noqa: E402
                                          to_model_range)
from deepzine.sampling.projection_model import load_projection_networks  # noqa: E402

NEAREST_OF = 1000


class OneCollection:
    """A conditional model's networks with the collection held fixed, so every section runs as for an
    unconditional model."""

    def __init__(self, networks, row):
        self._networks, self._row = networks, tf.constant(row[None], tf.float32)

    def __getattr__(self, name):
        return getattr(self._networks, name)

    def generate(self, latents, collections=None):
        if collections is None:
            collections = tf.tile(self._row, [tf.shape(latents)[0], 1])
        return self._networks.generate(latents, collections)


def generated_targets(networks, count, seed, exact=False):
    """Pages the model drew: as saved (uint8), or exact (float32 in [-1, 1], so the known answer is exactly right)."""
    latents = np.random.default_rng(seed).standard_normal((count, networks.latent_size)).astype(np.float32)
    pages = np.asarray(networks.generate(latents))  # clipped to [-1, 1], as saved
    return pages if exact else np.clip(np.rint((pages + 1) * 127.5), 0, 255).astype(np.uint8)


def training_hashes(model_path):
    table = os.path.join(os.path.dirname(os.path.abspath(model_path)), 'documents.tsv')
    if not os.path.isfile(table):
        return set()
    with open(table, encoding='utf-8') as handle:
        return {row['sha256'] for row in csv.DictReader(handle, delimiter='\t')}


def unseen_targets(folder, rendering, count, seed, excluded_hashes):
    """One page of each of `count` documents (seeded), none of them a training document."""
    documents = [document for document in find_page_documents(folder, '--unseen')
                 if hashlib.sha256(open(document.path, 'rb').read()).hexdigest() not in excluded_hashes]
    random_generator = np.random.default_rng(seed)
    chosen = sorted(random_generator.choice(len(documents), min(count * 2, len(documents)), replace=False))
    user_pages = read_user_pages([documents[index] for index in chosen], rendering)
    by_document = {}
    for row, (key, _) in enumerate(user_pages.sources):
        by_document.setdefault(key, []).append(row)
    rows = [int(random_generator.choice(candidates)) for candidates in by_document.values()][:count]
    return user_pages.pages[rows], [user_pages.sources[row] for row in rows]


def project(networks, targets, settings, seed=0, batch_size=16):
    """(latents, generated pages, seconds) with the stage's own Projector."""
    projector = Projector(networks, settings, seed)
    started = time.perf_counter()
    latents, pages = [], []
    for start in range(0, len(targets), batch_size):
        batch = projector.project(targets[start:start + batch_size])
        latents.append(batch.latents)
        pages.append(batch.pages)
    return np.concatenate(latents), np.concatenate(pages), time.perf_counter() - started


def nearest_sample_rms(networks, targets, seed=1):
    latents = np.random.default_rng(seed).standard_normal((NEAREST_OF, networks.latent_size)).astype(np.float32)
    samples = np.concatenate([np.asarray(networks.generate(latents[i:i + 100])) for i in range(0, NEAREST_OF, 100)])
    wanted = to_model_range(targets)
    best = np.full(len(targets), np.inf)
    for start in range(0, NEAREST_OF, 100):
        squared = np.mean(np.square(wanted[:, None] - samples[None, start:start + 100]), axis=(2, 3, 4))
        best = np.minimum(best, squared.min(axis=1))
    return 127.5 * np.sqrt(best)


def summary(values):
    values = np.asarray(values)
    return f'mean {values.mean():.4f}, median {np.median(values):.4f}, worst {values.max():.4f}'


def recovery(networks, arguments):
    for exact in (True, False):
        targets = generated_targets(networks, arguments.recovery_pages, seed=7, exact=exact)
        _, pages, seconds = project(networks, targets, ProjectionSettings())
        errors = relative_errors(pages, to_model_range(targets))
        print(f'recovery: {len(targets)} generated pages ({"float32" if exact else "saved as uint8"}), '
              f'default settings: relative error {summary(errors)}; {np.mean(errors < 0.05):.0%} under 5 %; '
              f'{len(targets) / seconds:.3f} pages/s', flush=True)
        print('  relative errors, sorted: ' + ' '.join(f'{error:.3f}' for error in sorted(errors)), flush=True)


def real(networks, rendering, arguments):
    from deepzine.sampling.projection_outputs import write_sheet
    targets, sources = unseen_targets(arguments.unseen, rendering, arguments.real_pages, 3, training_hashes(arguments.model))
    _, pages, seconds = project(networks, targets, ProjectionSettings())
    ratios = rms_errors_255(pages, to_model_range(targets)) / nearest_sample_rms(networks, targets)
    print(f'real: {len(targets)} unseen pages of {len(set(key for key, _ in sources))} documents: projection RMS '
          f'error / nearest of {NEAREST_OF} samples: {summary(ratios)}, best {ratios.min():.3f}; '
          f'{np.mean(ratios <= 0.7):.0%} at most 0.7; relative error {summary(relative_errors(pages, to_model_range(targets)))}; '
          f'{len(targets) / seconds:.3f} pages/s', flush=True)
    print('  ratios, sorted: ' + ' '.join(f'{ratio:.2f}' for ratio in sorted(ratios)))
    figures = os.path.join(REPO, 'bench', 'figures')
    os.makedirs(figures, exist_ok=True)
    os.replace(write_sheet(figures, targets[:32], pages[:32]), os.path.join(figures, 'projection_sheet.png'))
    pixels_only = dataclasses.replace(ProjectionSettings(), critic_feature_weight=0.0)
    _, plain, _ = project(networks, targets[:16], pixels_only)
    ratios = rms_errors_255(plain, to_model_range(targets[:16])) / nearest_sample_rms(networks, targets[:16])
    print(f'  the first 16 with pixels only (critic_feature_weight 0): ratio {summary(ratios)}', flush=True)
    os.replace(write_sheet(figures, targets[:16], plain), os.path.join(figures, 'projection_sheet_pixels_only.png'))


def seen(networks, rendering, arguments):
    """The real-page ratio on pages the model trained on: if it is no better than on unseen pages, what limits
    projection is what the model can draw, not how far it generalises."""
    from deepzine.data.store import PageStore
    if not arguments.seen:
        sys.exit('--sections seen needs --seen: the page file the model was trained from')
    with PageStore(arguments.seen) as store:
        number = list(store.collection_names).index(arguments.held_collection) if arguments.held_collection else 0
        rows = np.flatnonzero(store.collection_numbers == number)
        chosen = np.sort(np.random.default_rng(3).choice(rows, min(arguments.real_pages, len(rows)), replace=False))
        targets = store.read(networks.size, chosen)
    _, pages, seconds = project(networks, targets, ProjectionSettings())
    ratios = rms_errors_255(pages, to_model_range(targets)) / nearest_sample_rms(networks, targets)
    print(f'seen: {len(targets)} training pages of collection {store.collection_names[number]}: projection RMS error / '
          f'nearest of {NEAREST_OF} samples: {summary(ratios)}, best {ratios.min():.3f}; '
          f'{np.mean(ratios <= 0.7):.0%} at most 0.7; {len(targets) / seconds:.3f} pages/s', flush=True)


def ceiling(networks, rendering, arguments):
    """What a model that drew each unseen page exactly, only blurred (a Gaussian of radius r pixels), would score on
    the real-page ratio: how sharp a model must be for 0.7 (no projection: quick)."""
    from PIL import Image, ImageFilter
    targets, _ = unseen_targets(arguments.unseen, rendering, arguments.real_pages, 3, training_hashes(arguments.model))
    nearest, wanted = nearest_sample_rms(networks, targets), to_model_range(targets)
    for radius in (0.5, 1, 1.5, 2, 3, 4):
        blurred = np.stack([np.asarray(Image.fromarray(page.squeeze(-1) if page.shape[-1] == 1 else page)
                                       .filter(ImageFilter.GaussianBlur(radius))) for page in targets])
        ratios = rms_errors_255(to_model_range(blurred.reshape(targets.shape)), wanted) / nearest
        print(f'ceiling: the unseen pages blurred by {radius} px / nearest of {NEAREST_OF} samples: {summary(ratios)}; '
              f'{np.mean(ratios <= 0.7):.0%} at most 0.7', flush=True)


def contrast(networks, rendering, arguments):
    latents = np.random.default_rng(1).standard_normal((NEAREST_OF, networks.latent_size)).astype(np.float32)
    samples = np.concatenate([np.asarray(networks.generate(latents[i:i + 100])) for i in range(0, NEAREST_OF, 100)])
    targets, _ = unseen_targets(arguments.unseen, rendering, arguments.real_pages, 3, training_hashes(arguments.model))
    unseen = to_model_range(targets)
    print(f'contrast: pixel standard deviation per page, in [-1, 1] units: {NEAREST_OF} generated pages '
          f'{samples.std(axis=(1, 2, 3)).mean():.3f} (mean brightness {samples.mean():.3f}); {len(unseen)} unseen pages '
          f'{unseen.std(axis=(1, 2, 3)).mean():.3f} (mean brightness {unseen.mean():.3f})', flush=True)


def comparison_sets(networks, rendering, arguments, count=8):
    generated = generated_targets(networks, count, seed=11)
    unseen, _ = unseen_targets(arguments.unseen, rendering, count, 5, training_hashes(arguments.model))
    return generated, unseen


def row(name, networks, generated, unseen, settings=None, method=None):
    results = []
    for targets in (generated, unseen):
        if method:
            pages, seconds = method(networks, targets)
        else:
            _, pages, seconds = project(networks, targets, settings)
        results.append((relative_errors(pages, to_model_range(targets)).mean(),
                        rms_errors_255(pages, to_model_range(targets)).mean(), len(targets) / seconds))
    (generated_error, _, generated_rate), (_, real_rms, real_rate) = results
    print(f'| {name} | {generated_error:.4f} | {real_rms:.2f} | {generated_rate:.3f} / {real_rate:.3f} |', flush=True)


def steps(networks, rendering, arguments):
    generated, unseen = comparison_sets(networks, rendering, arguments)
    print('| steps | generated pages: mean relative error | unseen pages: mean RMS error (grey levels) | pages/s (generated / unseen) |')
    print('| --- | --- | --- | --- |')
    for count in (25, 50, 100, 200, 400):
        row(str(count), networks, generated, unseen, ProjectionSettings(steps=count))


def settings(networks, rendering, arguments):
    generated, unseen = comparison_sets(networks, rendering, arguments)
    default = ProjectionSettings()
    print('| setting | generated pages: mean relative error | unseen pages: mean RMS error (grey levels) | pages/s (generated / unseen) |')
    print('| --- | --- | --- | --- |')
    variants = [('defaults', default),
                ('critic_feature_weight 0 (pixels only)', dataclasses.replace(default, critic_feature_weight=0.0)),
                ('critic_feature_weight 10', dataclasses.replace(default, critic_feature_weight=10.0)),
                ('latent_prior_weight 0', dataclasses.replace(default, latent_prior_weight=0.0)),
                ('latent_prior_weight 1', dataclasses.replace(default, latent_prior_weight=1.0)),
                ('start_candidates 1', dataclasses.replace(default, start_candidates=1)),
                ('start_candidates 1000', dataclasses.replace(default, start_candidates=1000))]
    for name, variant in variants:
        row(name, networks, generated, unseen, variant)
    row('Adam, 600 steps, StyleGAN2 schedule (lr 0.1), pixels only', networks, generated, unseen, method=adam_projection)
    row('L-BFGS of the batch as one problem, pixels only', networks, generated, unseen, method=joint_lbfgs_projection)


def adam_projection(networks, targets, steps_count=600, learning_rate=0.1):
    """StyleGAN2-ADA's schedule (5 % ramp-up, cosine ramp-down over the last 25 %) on the same loss, pixels only."""
    projector = Projector(networks, dataclasses.replace(ProjectionSettings(), critic_feature_weight=0.0), 0)
    wanted = to_model_range(targets)
    contrast = tf.constant(np.maximum(wanted.var(axis=(1, 2, 3)), (1 / 127.5) ** 2).astype(np.float32))
    started = time.perf_counter()
    latents = tf.Variable(projector.nearest_candidates(wanted, 0, None)[0])
    optimizer = tf.keras.optimizers.Adam(learning_rate)
    rows = tf.range(len(targets))
    for step in range(steps_count):
        progress = step / steps_count
        rate = learning_rate * min(1.0, progress / 0.05) * (0.5 - 0.5 * np.cos(np.pi * min(1.0, (1 - progress) / 0.25)))
        optimizer.learning_rate.assign(rate)
        _, gradient = projector.loss_and_gradient(latents, rows, tf.constant(wanted), contrast, [], None)
        optimizer.apply_gradients([(gradient, latents)])
    pages = np.asarray(networks.generate(latents.numpy()))
    return pages, time.perf_counter() - started


def joint_lbfgs_projection(networks, targets, steps_count=200):
    """L-BFGS with one line search and one curvature history for the whole batch (what scipy's minimize would do)."""
    projector = Projector(networks, dataclasses.replace(ProjectionSettings(), critic_feature_weight=0.0), 0)
    wanted = to_model_range(targets)
    contrast = tf.constant(np.maximum(wanted.var(axis=(1, 2, 3)), (1 / 127.5) ** 2).astype(np.float32))
    count, size = len(targets), networks.latent_size
    rows = tf.range(count)
    started = time.perf_counter()

    def evaluate(flat, _):
        loss, gradient = projector.loss_and_gradient(tf.constant(flat.reshape(count, size)), rows, tf.constant(wanted), contrast, [], None)
        return np.array([loss.numpy().sum()]), gradient.numpy().reshape(1, -1)
    optimizer = BatchLbfgs(evaluate, projector.nearest_candidates(wanted, 0, None)[0].reshape(1, -1))
    for _ in range(steps_count):
        optimizer.step()
    pages = np.asarray(networks.generate(optimizer.x.reshape(count, size).astype(np.float32)))
    return pages, time.perf_counter() - started


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('--model', default=os.path.join(REPO, 'pretrained_models', 'debian_libraries', '128'),
                        help='a model folder (default: the shipped model at 128 px)')
    parser.add_argument('--unseen', required=True, help='folder of PDFs the model never saw')
    parser.add_argument('--sections', nargs='+', default=['recovery', 'real', 'steps', 'settings'])
    parser.add_argument('--recovery-pages', type=int, default=16)
    parser.add_argument('--real-pages', type=int, default=32)
    parser.add_argument('--collection', help='of a conditional model: the collection held fixed (default: its first)')
    parser.add_argument('--seen', help='for --sections seen: the page file the model was trained from')
    arguments = parser.parse_args(argv)
    networks, rendering, names = load_projection_networks(locate_model(None, arguments.model, None))
    collection = arguments.held_collection = None
    if names:
        collection = arguments.collection or names[0]
        arguments.held_collection = collection
        networks = OneCollection(networks, np.eye(len(names), dtype=np.float32)[list(names).index(collection)])
    print(f'TensorFlow {tf.__version__}, {os.cpu_count()} CPU cores; model {arguments.model}'
          f'{f", collection {collection}" if collection else ""}', flush=True)
    for section in arguments.sections:
        if section == 'recovery':
            recovery(networks, arguments)
        else:
            {'real': real, 'steps': steps, 'settings': settings, 'contrast': contrast, 'seen': seen,
             'ceiling': ceiling}[section](networks, rendering, arguments)


if __name__ == '__main__':
    main()
