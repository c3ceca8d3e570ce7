"""Parameters read by more than one stage, each declared once here; stage-only keys live in their stage."""

from deepzine.parameters import ConfigError, Parameter, Parameters, non_negative, positive, power_of_two


class RunParameters(Parameters):
    """Keys of the whole run, read by the command line before any stage."""
    verbose = Parameter(False, 'bool', "log debug lines and TensorFlow's own messages too (as --verbose does)")


class SeedParameters(Parameters):
    random_seed = Parameter(None, 'int', 'seed for every random choice of training and sampling (initial weights, data order, latents); None draws a fresh one and logs it')


class DataFileParameters(Parameters):
    data_hdf5 = Parameter('./data/pages.hdf5', 'path', 'the multi-resolution HDF5 of page images: written by load_data, read by train and evaluate')


class OutputSizeParameters(Parameters):
    gan_output_size = Parameter(128, 'int', 'final image size of the GAN in pixels (train up to it; sample at it)', check=power_of_two)


def _at_least_16(value):
    if value is not None and (value < 16 or value & (value - 1)):
        return ('must be a power of two, at least 16 (below that the original\'s discriminator would be '
                'narrower at 4x4 than its generator)')


class ModelParameters(OutputSizeParameters):
    """Keys that define the network's shape; a run's saved config is the authority once training has started."""
    latent_size = Parameter(128, 'int', 'length of the latent vector fed to the generator', check=positive)
    max_filter = Parameter(128, 'int', 'convolution filters per layer below filter_num_reduction_transition_size', check=positive)
    min_filter = Parameter(16, 'int', 'floor on filters per layer at the high resolutions (this version\'s own; the original had none)', check=positive)
    filter_num_reduction_transition_size = Parameter(128, 'int', 'from this image size up, filters halve at each size: max_filter / 2 at this size, / 4 at twice it, ... (the original\'s rule)', check=_at_least_16)
    equalized_learning_rate = Parameter(True, 'bool', 'scale weights at run time by sqrt(2/fan_in) (Karras et al. 2018); the original DeepZine had none')
    minibatch_group_size = Parameter(4, 'int', 'images per group for the discriminator minibatch standard deviation; must divide the per-device batch; 0: the whole batch (the original)', check=non_negative)


class DeviceParameters(Parameters):
    gpu_num = Parameter(None, 'list', 'GPU indices to use, e.g. 0 or [0, 1]; None uses every GPU present (none: the CPU)')


class LogDirParameters(Parameters):
    log_dir = Parameter('./log', 'path', 'training run folder: checkpoints, <size>/ model folders, TensorBoard events, metrics, train_config.yaml')


class PretrainedModelParameters(Parameters):
    pretrained_model = Parameter(False, 'bool', 'the model is an ORIGINAL DeepZine TF1 checkpoint (detected automatically when left false); with train: true, train the original\'s own network (no weight scaling or latent normalization, one minibatch-stddev group, its pretrained widths)')


class ModelFileParameters(LogDirParameters, PretrainedModelParameters):
    """Where a trained model is found, for every stage that samples from one."""
    inference_model_directory = Parameter(None, 'path', 'folder holding <gan_output_size>/ models (a training log_dir or pretrained_models); None: log_dir')
    inference_model_path = Parameter(None, 'path', 'one model, overriding inference_model_directory: a model folder (log_dir/<size>), a SavedModel folder, or an original DeepZine checkpoint (folder or model.ckpt prefix)')


class SampleBatchParameters(Parameters):
    inference_batch_size = Parameter(16, 'int', 'latents per generator call when sampling or evaluating (independent of training)', check=positive)


class SampleOutputParameters(SampleBatchParameters):
    inference_output_directory = Parameter('./inference', 'path', 'folder for sampled pages, interpolation frames and movies: each run writes into its own numbered folder run-001, run-002, ... inside it')
    contrast_stretch = Parameter(False, 'bool', 'stretch each saved page or frame to its own darkest..lightest values (what the original\'s image writer did); false: the fixed mapping of [-1, 1] to 0..255')


class EvaluationParameters(Parameters):
    """Read by the evaluate stage and, with evaluate_during_training, by training at the end of each phase."""
    evaluation_image_num = Parameter(1000, 'int', 'generated pages (and as many real ones, twice, for the real-vs-real baseline) for the SWD; 0 skips it. The paper used 16384', check=non_negative)
    memorization_check_num = Parameter(32, 'int', 'generated pages (and as many real ones) whose nearest real page is searched over the whole HDF5 at <=32px; 0 skips it', check=non_negative)
    evaluation_seed = Parameter(0, 'int', 'seed of the evaluation (real pages, patches, latents, directions): fixed so runs and checkpoints compare; None draws one')

    def check_evaluation_counts(self):
        if self.evaluation_image_num == 0 and self.memorization_check_num == 0:
            raise ConfigError('evaluation_image_num=0 and memorization_check_num=0: nothing to evaluate; set either above 0')
