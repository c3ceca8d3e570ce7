"""The `evaluate` stage: how close a trained generator's pages are to the real ones, and whether it copies them.

    evaluate: true
    evaluation_image_num: 1000        # SWD: 1000 generated vs 1000 real pages, + 1000 real vs 1000 other real
    memorization_check_num: 32        # nearest real page of 32 generated pages, grid + distances

Writes <log_dir>/metrics/swd_<size>_<time>.json, nearest_<size>_<time>.json and
.png, and TensorBoard scalars (see deepzine.evaluation.evaluate). The SWD is
multi-scale sliced Wasserstein distance x1e3 (Karras et al. 2018): lower is
better, and the real-vs-real baseline is the floor a perfect generator would
reach with this many pages.
"""

from deepzine.evaluation.evaluate import evaluate_generator, metrics_directory  # noqa: F401 (the trainer's entry point)
from deepzine.parameter_groups import DataFileParameters, ModelFileParameters, ModelParameters, SampleOutputParameters
from deepzine.parameters import ConfigError, Parameter, Parameters, non_negative
from deepzine.sampling.generation import check_model_exists, model_location
from deepzine.stage import Stage


class EvaluationParameters(Parameters):
    """Read by the evaluate stage and, with evaluate_during_training, by training at the end of each phase."""
    evaluation_image_num = Parameter(1000, 'int', 'generated pages (and as many real ones, twice, for the real-vs-real baseline) for the SWD; 0 skips it. The paper used 16384', check=non_negative)
    memorization_check_num = Parameter(32, 'int', 'generated pages (and as many real ones) whose nearest real page is searched over the whole HDF5 at <=32px; 0 skips it', check=non_negative)
    evaluate_during_training = Parameter(False, 'bool', 'also evaluate (same counts and seed) the generator at the end of every training phase, into log_dir/metrics')
    evaluation_seed = Parameter(0, 'int', 'seed of the evaluation (real pages, patches, latents, directions): fixed so runs and checkpoints compare; None draws one')

    def validate_evaluation(self):
        if self.evaluation_image_num == 0 and self.memorization_check_num == 0:
            raise ConfigError('evaluation_image_num=0 and memorization_check_num=0: nothing to evaluate; set either above 0')


class EvaluateStage(Stage, EvaluationParameters, DataFileParameters, ModelParameters, ModelFileParameters, SampleOutputParameters):
    toggle = 'evaluate'

    evaluate = Parameter(False, 'bool', 'measure a trained generator: multi-scale sliced Wasserstein distance to the real pages and a nearest-real-page memorization check, into log_dir/metrics')

    def validate(self):
        self.validate_evaluation()
        self.require_data_file(self.earlier_stages)
        check_model_exists(self)

    def plan(self):
        from deepzine.evaluation.swd import level_sizes
        size, count, pages = self.gan_output_size, self.evaluation_image_num, self.memorization_check_num
        seed = 'a fresh seed' if self.evaluation_seed is None else f'evaluation_seed {self.evaluation_seed}'
        lines = [f'load the {size}px generator from {model_location(self)}; real pages from {self.data_hdf5} ({seed})']
        if count:
            levels = ', '.join(map(str, level_sizes(size)))
            lines.append(f'SWD x1e3 at levels {levels}: {count} generated pages vs {count} real pages, and {count} other '
                         f'real pages vs the same {count} as the baseline (fewer if the HDF5 holds under {2 * count})')
        if pages:
            lines.append(f'memorization: nearest real page (<=32px, whole HDF5) of {pages} generated and {pages} real pages')
        lines.append(f'write {self.output_directory()}/swd_{size}_<time>.json, nearest_{size}_<time>.json/.png '
                     f'and TensorBoard scalars')
        return lines

    def output_directory(self):
        return metrics_directory(self.log_dir)

    def run(self):
        from deepzine.data.store import PageStore
        from deepzine.sampling.generation import load_page_generator
        with PageStore(self.data_hdf5) as store:  # opened first: a missing file fails before the model loads
            page_generator = load_page_generator(self)
            return evaluate_generator(page_generator, store, self.gan_output_size, self.log_dir, step=None,
                                      image_num=self.evaluation_image_num, seed=self.evaluation_seed,
                                      memorization_num=self.memorization_check_num)
