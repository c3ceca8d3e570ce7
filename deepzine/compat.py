"""Keys of the original DeepZine's configs (2018): translated into today's keys, or ignored with the reason.

The original passed every YAML key to its classes, whose `add_parameter` calls
declared them; an unknown key was silently ignored. Here an unknown key is an
error (a typo should not cost a day of training), so every key the original's
code declared is listed below: the ones that still mean something are
declared parameters elsewhere, the rest are translated or retired here, each
with a one-line warning saying why. `tests/test_compat.py` checks the list
against the original's declarations and runs its config files.
"""

import logging

logger = logging.getLogger(__name__)

# Keys the original set for itself between stages, or that no longer change anything: ignored, with why.
RETIRED_KEYS = {
    'preload_resized_data': 'pages are always streamed from the HDF5 (the original never read this key either)',
    'starting_depth': 'use gan_starting_size (a size in pixels)',
    'progressive_depth': 'use gan_output_size (a size in pixels)',
    'batch_size_reduction_transition_depth': 'use batch_size_reduction_transition_size (a size in pixels)',
    'filter_num_reduction_transition_depth': 'use filter_num_reduction_transition_size (a size in pixels)',
    'model_output_size': 'the original set it for each phase itself; here the schedule does (gan_output_size is the last size)',
    'transition': 'the original set it for each phase itself; every size here has a fade-in then a stable phase',
    'training_data': 'the original set it to its page reader; here training reads data_hdf5',
    'input_model_path': 'the original set it between phases; a run here continues from log_dir/checkpoints, '
                        'or from log_dir/<size> with gan_starting_size',
    'output_model_path': 'the original set it between phases; models go to log_dir/<size>/',
    'model_sample_dir': 'the original set it from samples_dir for each phase; use samples_dir',
    'model_logging_dir': 'the original set it to log_dir; use log_dir',
    'inference_mode': 'the original set it for sampling itself; sampling here loads only the generator',
    'test_data_directory': 'a key of the first version of the original, never read by its later code',
    'test_model_path': 'a key of the first version of the original; use inference_model_path',
    'test_model_samples': 'a key of the first version of the original; use inference_output_num',
    'test_input_latent': 'a key of the first version of the original; use inference_input_latent',
}

# Keys an earlier version of the original spelled differently.
RENAMED_KEYS = {
    'interpolation_mode': 'interpolation_method',
    'interpolation_images': 'interpolation_vector_num',
}

# Values of the original's own defaults that this version spells otherwise.
_NONE_SPELLINGS = (None, 'None', 'none', 'null', '~', '')


def _data_source(raw):
    """The original's download_pdf / convert_pdf switches -> data_source (when data_source is not given)."""
    download_pdf, convert_pdf = raw.pop('download_pdf', None), raw.pop('convert_pdf', None)
    if download_pdf is None and convert_pdf is None:
        return
    if 'data_source' in raw:
        logger.warning('download_pdf / convert_pdf (original keys) are ignored: data_source=%s is given', raw['data_source'])
        return
    if convert_pdf is not None and str(convert_pdf).strip().lower() in ('false', 'no', 'off', '0'):
        raw['data_source'] = 'image_directory'
        logger.info('convert_pdf: false (original key) -> data_source: image_directory')
    elif download_pdf is not None and str(download_pdf).strip().lower() in ('false', 'no', 'off', '0'):
        raw['data_source'] = 'pdf_directory'
        logger.info('download_pdf: false (original key) -> data_source: pdf_directory')


def translate(raw):
    """A YAML mapping as the original understood it -> a mapping of today's keys (a new dict; warnings logged)."""
    if not isinstance(raw, dict):
        return raw
    raw = dict(raw)
    for key in [key for key in raw if key in RETIRED_KEYS]:
        logger.warning('config key %s (original DeepZine) is ignored: %s', key, RETIRED_KEYS[key])
        del raw[key]
    for old, new in RENAMED_KEYS.items():
        if old in raw:
            value = raw.pop(old)
            if new not in raw:
                raw[new] = value
            logger.warning('config key %s (an early original DeepZine key) is read as %s', old, new)
    _data_source(raw)
    if 'pdf_num' in raw and raw['pdf_num'] in _NONE_SPELLINGS:
        raw['pdf_num'] = 0  # the original's default None: the whole collection
    if 'inference_output_directory' in raw and raw['inference_output_directory'] in _NONE_SPELLINGS:
        del raw['inference_output_directory']  # the original's default None: this version's default folder
    return raw
