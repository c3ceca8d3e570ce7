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

import dataclasses

from deepzine.data.store import PageStore, read_page_file_facts
from deepzine.evaluation.evaluate import evaluate_generator, metrics_directory
from deepzine.evaluation.swd import level_sizes
from deepzine.model.loading import load_generator
from deepzine.parameter_groups import (DataFileParameters, EvaluationParameters, ModelFileParameters,
                                       OutputSizeParameters, SampleBatchParameters)
from deepzine.parameters import ConfigError, Parameter
from deepzine.sampling.generation import sampling_model
from deepzine.stage import Stage


@dataclasses.dataclass(frozen=True)
class EvaluatePlan:
    model: object                 # deepzine.model.loading.ModelLocation
    data: object                  # deepzine.data.store.PageFileFacts
    metrics_folder: str
    log_dir: str
    image_num: int
    memorization_num: int
    seed: object
    batch_size: int


class EvaluateStage(Stage, EvaluationParameters, DataFileParameters, OutputSizeParameters, ModelFileParameters,
                    SampleBatchParameters):
    toggle = 'evaluate'
    summary = 'how close the generated pages are to the real ones'

    evaluate = Parameter(False, 'bool', 'measure a trained generator: multi-scale sliced Wasserstein distance to the real pages and a nearest-real-page memorization check, into log_dir/metrics')

    def validate(self, earlier):
        self.check_evaluation_counts()
        loading = earlier.get('load_data')
        data = (loading.page_file if loading is not None and loading.page_file.path == self.data_hdf5
                else read_page_file_facts(self.data_hdf5))
        data.require_size(self.gan_output_size, 'evaluate')
        model = sampling_model(self.inference_model_directory or self.log_dir, self.inference_model_path,
                               self.gan_output_size, self.pretrained_model, earlier)
        if model.collection_names and tuple(model.collection_names) != tuple(data.collections):
            raise ConfigError(f'data_hdf5={data.path} holds the collections {", ".join(data.collections)}, but the '
                              f'model {model.path} was trained on {", ".join(model.collection_names)}: evaluate '
                              f'against the data it was trained on')
        return EvaluatePlan(model=model, data=data, metrics_folder=metrics_directory(self.log_dir),
                            log_dir=self.log_dir, image_num=self.evaluation_image_num,
                            memorization_num=self.memorization_check_num, seed=self.evaluation_seed,
                            batch_size=self.inference_batch_size)

    def describe(self, plan):
        size, count, pages = plan.model.size, plan.image_num, plan.memorization_num
        seed = 'a fresh seed' if plan.seed is None else f'evaluation_seed {plan.seed}'
        lines = [f'load {plan.model.describe()}; real pages from {plan.data.path} ({seed})']
        if count:
            levels = ', '.join(map(str, level_sizes(size)))
            lines.append(f'SWD x1e3 at levels {levels}: {count} generated pages vs {count} real pages, and {count} other '
                         f'real pages vs the same {count} as the baseline (fewer if the HDF5 holds under {2 * count})')
        if pages:
            lines.append(f'memorization: nearest real page (<=32px, whole HDF5) of {pages} generated and {pages} real pages')
        lines.append(f'write {plan.metrics_folder}/swd_{size}_<time>.json, nearest_{size}_<time>.json/.png '
                     f'and TensorBoard scalars')
        return lines

    def output_directory(self, plan):
        return plan.metrics_folder

    def run(self, plan):
        with PageStore(plan.data.path) as store:  # opened first: a missing file fails before the model loads
            page_generator = load_generator(plan.model, plan.batch_size)
            return evaluate_generator(page_generator, store, plan.model.size, plan.log_dir, step=None,
                                      image_num=plan.image_num, seed=plan.seed, memorization_num=plan.memorization_num)
