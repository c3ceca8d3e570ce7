"""Load what projection needs from any kind of model: the generator, the critic when the model kept one, and how its pages were made.

A DeepZine model folder keeps its discriminator at the sizes training ends
and fine-tunes from (the top sizes); a folder of a smaller size, a
`convert-legacy --sampling-only` conversion and a SavedModel hold the
generator alone, and projection then compares pixels only (and says so).
An original DeepZine checkpoint always holds both networks.
"""

import logging

from deepzine.model.loading import MODEL_FOLDER, ORIGINAL, SAVED_MODEL
from deepzine.sampling.page_input import PageRendering
from deepzine.sampling.projection import ProjectionNetworks

logger = logging.getLogger(__name__)


class _SavedModelGenerator:
    """A SavedModel's serving signature called like a Generator (gradients flow through a loaded signature)."""

    def __init__(self, signature):
        self.signature = signature

    def __call__(self, latents, size=None):
        return self.signature(latents=latents)['images']


def _rendering(config, size, channels):
    """How the model's own pages were squared and rasterized (its run's config), load_data's defaults otherwise."""
    config = config or {}
    return PageRendering(size, channels, square_mode=config.get('square_mode') or 'stretch',
                         program=config.get('pdf_conversion_program') or 'pdfium', max_dpi=config.get('pdf_dpi'))


def model_collection_names(description):
    """The names of a conditional model's collections (model.json), or None for an unconditional model."""
    names = (description or {}).get('collections')
    return list(names) if names and len(names) > 1 else None


def load_projection_networks(location, critic_wanted=True):
    """(ProjectionNetworks, PageRendering, collection names or None) of a ModelLocation.

    critic_wanted: False when the critic-feature term is off: its critic is then neither loaded nor missed.
    """
    import tensorflow as tf
    description = {}
    if location.kind == MODEL_FOLDER:
        from deepzine.model.model_folder import load_model_folder, read_model_json
        with_critic = critic_wanted and 'discriminator' in read_model_json(location.path).get('networks', [])
        architecture, size, generator, critic, description = load_model_folder(location.path, with_critic)
        latent_size, channels = architecture.latent_size, architecture.channels
    elif location.kind == ORIGINAL:
        from deepzine.model.legacy import load_legacy_networks
        architecture, generator, critic = load_legacy_networks(location.path, location.size)
        critic = critic if critic_wanted else None
        size, latent_size, channels = architecture.output_size, architecture.latent_size, architecture.channels
    else:
        assert location.kind == SAVED_MODEL
        signature = tf.saved_model.load(location.path).signatures['serving_default']
        latent_size = signature.structured_input_signature[1]['latents'].shape[1]
        _, size, _, channels = signature(latents=tf.zeros([1, latent_size]))['images'].shape
        generator, critic = _SavedModelGenerator(signature), None
    if critic is None and critic_wanted:
        logger.warning('%s kept no critic (discriminator): projecting with the pixel and latent-prior terms only',
                       location.path)
    networks = ProjectionNetworks(generator, critic, size, latent_size, channels)
    logger.info('projecting into %s: %dx%d pages, %d channel(s), latent size %d%s', location.describe(), size, size,
                channels, latent_size, ', with its critic\'s features' if critic is not None else '')
    return networks, _rendering(description.get('config'), size, channels), model_collection_names(description)
