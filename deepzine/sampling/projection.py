"""Projection: find, for each real page, the latent whose generated page is closest to it.

The measure of closeness has three terms, each weighted by a setting:
- pixels: the mean squared difference over the page's own contrast (its
  variance), so the term is the squared relative error that bench/README.md
  reports, and a faint page weighs as much as a dark one;
- critic features: the discriminator's feature maps of both pages, each
  pixel's feature vector scaled to unit length as LPIPS does (Zhang et al.
  2018), compared layer by layer: a perceptual measure learnt on exactly the
  model's own pages, with no outside network (StyleGAN2-ADA's projector uses
  VGG16, which cannot be had here). Models kept without their critic fall
  back to pixels;
- latent prior: (mean(z^2) - 1)^2 keeps the latent at the norm of the
  standard normal latents the model was trained on, so a walk from it looks
  like a walk between sampled pages (pytorch_GAN_zoo's inversion does the same).

Each page starts from the nearest of `start_candidates` random latents and is
then refined by L-BFGS, each page on its own (deepzine.sampling.lbfgs). Every
call of the networks goes through `ProjectionNetworks`, so a conditional model
(one-hot collection vectors) changes one place; `Projector.project` tries
each collection it is given and keeps, page by page, the best.
"""

import dataclasses

import numpy as np

from deepzine.sampling.lbfgs import BatchLbfgs

LBFGS_MEMORY = 10
CONTRAST_FLOOR = (1 / 127.5) ** 2  # the variance below which a page counts as blank: one grey level
CANDIDATE_BATCH = 64


@dataclasses.dataclass(frozen=True)
class ProjectionSettings:
    steps: int = 200
    pixel_weight: float = 1.0
    critic_feature_weight: float = 1.0
    latent_prior_weight: float = 0.01
    start_candidates: int = 256


class ProjectionNetworks:
    """The generator, and the critic when the model kept one, at one size: the one place that calls them.

    collections: None for an unconditional model, else float32 [B, collection_count].
    """

    def __init__(self, generator, critic, size, latent_size, channels):
        self.generator, self.critic = generator, critic
        self.size, self.latent_size, self.channels = size, latent_size, channels

    def generate(self, latents, collections=None):
        """Pages as they are saved: clipped to [-1, 1], since paper whiter than white is still white on disk."""
        import tensorflow as tf
        if collections is None:
            pages = self.generator(latents, size=self.size)
        else:
            pages = self.generator(latents, collections=collections, size=self.size)
        return tf.clip_by_value(pages, -1.0, 1.0)

    def critic_features(self, images):
        """Unit-length feature vectors at every pixel of every critic layer (before the batch-mixing stddev)."""
        import tensorflow as tf
        return [maps * tf.math.rsqrt(tf.reduce_sum(tf.square(maps), axis=-1, keepdims=True) + 1e-8)
                for maps in self.critic.feature_maps(images, size=self.size)]


def to_model_range(pages):
    """uint8 pages -> float32 in [-1, 1], the generator's range; float pages are taken to be in that range already."""
    pages = np.asarray(pages)
    return pages.astype(np.float32) / 127.5 - 1.0 if pages.dtype == np.uint8 else pages.astype(np.float32)


def relative_errors(generated, targets):
    """Per page: L2 norm of the difference over the L2 norm of the target minus its mean brightness (its contrast)."""
    generated, targets = np.asarray(generated, np.float64), np.asarray(targets, np.float64)
    axes = tuple(range(1, targets.ndim))
    difference = np.sqrt(np.sum(np.square(generated - targets), axis=axes))
    contrast = np.sqrt(np.sum(np.square(targets - targets.mean(axis=axes, keepdims=True)), axis=axes))
    return difference / np.maximum(contrast, 1e-12)


def rms_errors_255(generated, targets):
    """Per page: root-mean-square pixel difference in grey levels (0-255), as the nearest-page check reports it."""
    generated, targets = np.asarray(generated, np.float64), np.asarray(targets, np.float64)
    return 127.5 * np.sqrt(np.mean(np.square(generated - targets), axis=tuple(range(1, targets.ndim))))


@dataclasses.dataclass
class ProjectedBatch:
    latents: np.ndarray            # float32 [B, latent_size]
    collection_indices: np.ndarray  # int [B]: which of the collections tried won (0 for an unconditional model)
    pages: np.ndarray              # float32 [B, S, S, C], the generated pages
    relative_errors: np.ndarray    # [B]
    rms_errors: np.ndarray         # [B], grey levels
    start_rms_errors: np.ndarray   # [B], grey levels: the nearest random candidate's, before refining


class Projector:
    """Projects batches of pages into one model with fixed settings and fixed random start candidates."""

    def __init__(self, networks, settings, seed):
        import tensorflow as tf
        self.networks, self.settings = networks, settings
        self.use_critic = networks.critic is not None and settings.critic_feature_weight > 0
        random_generator = np.random.default_rng(seed)
        self.candidates = random_generator.standard_normal(
            (settings.start_candidates, networks.latent_size)).astype(np.float32)
        self._candidate_pages = {}
        self.loss_and_gradient = tf.function(self._loss_and_gradient, reduce_retracing=True)

    def candidate_pages(self, collection_key, collections):
        """The pages of the start candidates (generated once per collection)."""
        if collection_key not in self._candidate_pages:
            pages = []
            for start in range(0, len(self.candidates), CANDIDATE_BATCH):
                latents = self.candidates[start:start + CANDIDATE_BATCH]
                pages.append(np.asarray(self.networks.generate(latents, _repeat(collections, len(latents)))))
            self._candidate_pages[collection_key] = np.concatenate(pages)
        return self._candidate_pages[collection_key]

    def _loss_and_gradient(self, latents, rows, targets, contrast, target_features, collections):
        import tensorflow as tf
        weights = self.settings
        with tf.GradientTape() as tape:
            tape.watch(latents)
            pages = self.networks.generate(latents, collections)
            wanted = tf.gather(targets, rows)
            pixel = tf.reduce_mean(tf.square(pages - wanted), axis=[1, 2, 3]) / tf.gather(contrast, rows)
            prior = tf.square(tf.reduce_mean(tf.square(latents), axis=-1) - 1.0)
            loss = weights.pixel_weight * pixel + weights.latent_prior_weight * prior
            if self.use_critic:
                features = self.networks.critic_features(pages)
                distances = [tf.reduce_mean(tf.reduce_sum(tf.square(mine - tf.gather(theirs, rows)), axis=-1), axis=[1, 2])
                             for mine, theirs in zip(features, target_features)]
                loss += weights.critic_feature_weight * tf.add_n(distances) / len(distances)
            total = tf.reduce_sum(loss)  # a sum: each page's gradient is its own, whatever shares its batch
        return loss, tape.gradient(total, latents)

    def project(self, targets, collections_to_try=(None,), on_step=None):
        """targets: uint8 [B, S, S, C] (or float32 in [-1, 1]) -> ProjectedBatch; on_step(fraction of this batch done)
        after each step.

        collections_to_try: one entry per collection to try, each None (an
        unconditional model) or a float32 [collection_count] vector; every
        page keeps the collection whose projection came closest.
        """
        import tensorflow as tf
        wanted = to_model_range(targets)
        contrast = np.maximum(wanted.var(axis=(1, 2, 3)), CONTRAST_FLOOR).astype(np.float32)
        target_features = [tf.constant(maps) for maps in self.networks.critic_features(wanted)] if self.use_critic else []
        best = None
        for index, collection in enumerate(collections_to_try):
            collections = None if collection is None else tf.constant(_repeat(collection[None], len(targets)))
            starts, start_errors = self.nearest_candidates(wanted, index, collection)
            optimizer = BatchLbfgs(self._evaluator(wanted, contrast, target_features, collections), starts, LBFGS_MEMORY)
            for step in range(self.settings.steps):
                optimizer.step()
                if on_step:
                    on_step((index * self.settings.steps + step + 1) / (len(collections_to_try) * self.settings.steps))
            found = _Found(optimizer.values, optimizer.x.astype(np.float32), start_errors, np.full(len(targets), index))
            best = found if best is None else best.better_of(found)
        pages = np.asarray(self.networks.generate(best.latents, _stack([collections_to_try[i] for i in best.indices])))
        return ProjectedBatch(best.latents, best.indices, pages, relative_errors(pages, wanted),
                              rms_errors_255(pages, wanted), best.start_errors)

    def nearest_candidates(self, wanted, collection_index, collection):
        pages = self.candidate_pages(collection_index, None if collection is None else collection[None])
        squared = np.mean(np.square(wanted[:, None] - pages[None]), axis=(2, 3, 4))
        nearest = squared.argmin(axis=1)
        return self.candidates[nearest], 127.5 * np.sqrt(squared[np.arange(len(wanted)), nearest])

    def _evaluator(self, wanted, contrast, target_features, collections):
        import tensorflow as tf
        targets, contrast = tf.constant(wanted), tf.constant(contrast)

        def evaluate(latents, rows):
            rows_tensor = tf.constant(rows, tf.int32)
            subset = None if collections is None else tf.gather(collections, rows_tensor)
            loss, gradient = self.loss_and_gradient(tf.constant(latents), rows_tensor, targets, contrast, target_features, subset)
            return loss.numpy(), gradient.numpy()
        return evaluate


def _repeat(collections, count):
    """A [1, K] collection row repeated for `count` latents; None stays None."""
    return None if collections is None else np.repeat(np.asarray(collections, np.float32), count, axis=0)


def _stack(chosen):
    """Per-page collection vectors [B, K] for the final pages; None for an unconditional model."""
    return None if chosen[0] is None else np.stack(chosen).astype(np.float32)


@dataclasses.dataclass
class _Found:
    """What one collection's projection found for every page of a batch."""
    losses: np.ndarray
    latents: np.ndarray
    start_errors: np.ndarray
    indices: np.ndarray

    def better_of(self, other):
        """Page by page, the projection with the lower loss."""
        better = other.losses < self.losses
        return _Found(*(np.where(better.reshape((-1,) + (1,) * (getattr(self, name).ndim - 1)),
                                 getattr(other, name), getattr(self, name))
                        for name in ('losses', 'latents', 'start_errors', 'indices')))
