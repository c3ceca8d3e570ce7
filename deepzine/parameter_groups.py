"""Parameters read by more than one stage, each declared once here; stage-only keys live in their stage."""

import os

from deepzine.parameters import ConfigError, Parameter, Parameters, non_negative, positive, power_of_two


class DataFileParameters(Parameters):
    data_hdf5 = Parameter('./data/pages.hdf5', 'path', 'the multi-resolution HDF5 of page images: written by load_data, read by train and evaluate')

    def require_data_file(self, earlier_stages):
        """validate() of a reader: data_hdf5 exists already, unless load_data writes it earlier in this run."""
        if 'load_data' not in earlier_stages and not os.path.isfile(self.data_hdf5):
            raise ConfigError(f'data_hdf5={self.data_hdf5}: no such file; make it with load_data: true')


class ModelParameters(Parameters):
    """Keys that define the network's shape; a run's saved config is the authority once training has started."""
    gan_output_size = Parameter(128, 'int', 'final image size of the GAN in pixels (train up to it; sample at it)', check=power_of_two)
    latent_size = Parameter(128, 'int', 'length of the latent vector fed to the generator', check=positive)
    max_filter = Parameter(128, 'int', 'convolution filters per layer at the low resolutions', check=positive)
    min_filter = Parameter(16, 'int', 'floor on filters per layer at the high resolutions', check=positive)
    filter_num_reduction_transition_size = Parameter(64, 'int', 'from this image size up, filters halve at each doubling of size', check=power_of_two)
    equalized_learning_rate = Parameter(True, 'bool', 'scale weights at run time by sqrt(2/fan_in) (Karras et al. 2018); the original DeepZine had none')
    minibatch_group_size = Parameter(4, 'int', 'images per group for the discriminator minibatch standard deviation; must divide the per-device batch', check=positive)


class DeviceParameters(Parameters):
    gpu_num = Parameter(None, 'list', 'GPU indices to use, e.g. 0 or [0, 1]; None uses every GPU present (none: the CPU)')


class ModelFileParameters(Parameters):
    """Where a trained model is found, for every stage that samples from one."""
    log_dir = Parameter('./log', 'path', 'training run folder: checkpoints, <size>/ generators, TensorBoard events, config.yaml')
    inference_model_directory = Parameter(None, 'path', 'folder holding <gan_output_size>/ models (a training log_dir or pretrained_models); None: log_dir')
    inference_model_path = Parameter(None, 'path', 'one model folder or checkpoint prefix, overriding inference_model_directory')
    pretrained_model = Parameter(False, 'bool', 'the model is an ORIGINAL DeepZine TF1 checkpoint (detected automatically when left false)')


class SampleOutputParameters(Parameters):
    inference_output_directory = Parameter('./inference', 'path', 'folder for sampled pages, interpolation frames and movies')
    inference_batch_size = Parameter(16, 'int', 'latents per generator call when sampling (independent of training)', check=positive)
