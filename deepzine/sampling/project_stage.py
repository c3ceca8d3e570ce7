"""The `project` stage: find your own pages inside a trained model, as latents a movie can walk through.

    project: true
    project_pages: ./my_pages            # PDFs and page images (recursive), or one file
    inference_model_path: ./log/64       # or inference_model_directory + gan_output_size
    # -> inference/run-NNN/projected_latents.npy, projected_pages.npy, projected_errors.csv, projected_sheet.png

Then `interpolation_latents: inference/run-NNN/projected_latents.npy` walks
from one of your pages to the next (or switch interpolation on in the same
config: it then visits the pages this stage projects).

Pages are rendered and squared as load_data would for this model (its own
square_mode and rasterizer, from model.json). A stopped run resumes: the same
command looks through the run folders of inference_output_directory, newest
first, for one whose project_state.json records the same model, the same
documents (names and sizes) and the same settings with pages still to do,
and finishes it (the log says which); otherwise it starts a new run folder.
"""

import dataclasses
import logging
import os
import time

import numpy as np

from deepzine.parameter_groups import (
    ModelFileParameters,
    OutputSizeParameters,
    SampleOutputParameters,
    SeedParameters,
)
from deepzine.parameters import Parameter, non_negative, positive
from deepzine.sampling import projection_outputs as outputs
from deepzine.sampling.generation import (
    RUN_FOLDER_PATTERN,
    next_run_folder,
    sampling_model,
)
from deepzine.sampling.page_input import find_page_documents
from deepzine.sampling.projection import ProjectionSettings
from deepzine.stage import Stage

logger = logging.getLogger(__name__)


@dataclasses.dataclass(frozen=True)
class ProjectPlan:
    model: object                  # deepzine.model.loading.ModelLocation
    pages_path: str
    documents: tuple               # deepzine.data.sources.Document, sorted
    run_folder: str
    resuming: bool                 # run_folder holds a stopped projection of the same pages, model and settings
    pages_done: int                # pages that run finished
    settings: ProjectionSettings
    batch_size: int
    random_seed: object
    contrast_stretch: bool         # for the side-by-side sheet
    signature: dict
    has_critic: bool = True        # as far as the checks can tell (a model folder lists its networks)                # what a re-run must match to finish this run

    @property
    def latents_path(self):
        return os.path.join(self.run_folder, outputs.LATENTS_FILE)


class ProjectStage(Stage, OutputSizeParameters, ModelFileParameters, SampleOutputParameters, SeedParameters):
    toggle = 'project'
    summary = 'find your own pages in a trained model'

    project = Parameter(False, 'bool', 'find the latent of each page of project_pages in a trained model (its projection), into a run folder of inference_output_directory')
    project_pages = Parameter(None, 'path', 'a folder of PDFs and page images (png/jpg/tif, searched recursively), or one such file, to project')
    project_steps = Parameter(200, 'int', 'L-BFGS steps per page (each about one generator and critic pass forward and back); the error stops falling by about 200', check=positive)
    project_pixel_weight = Parameter(1.0, 'float', 'weight of the pixel term: the squared difference over the page\'s own contrast (its variance)', check=non_negative)
    project_critic_feature_weight = Parameter(1.0, 'float', 'weight of the critic-feature term: the distance between the critic\'s unit-length feature maps of the two pages (ignored when the model kept no critic)', check=non_negative)
    project_latent_prior_weight = Parameter(0.01, 'float', 'weight of (mean(z^2) - 1)^2, which keeps the latent at the norm of the random latents the model was trained on', check=non_negative)
    project_start_candidates = Parameter(256, 'int', 'random latents generated once; each page starts from the one whose page is nearest', check=positive)

    def validate(self, earlier):
        from deepzine.parameters import ConfigError
        if not self.project_pages:
            raise ConfigError('project_pages=None: set it to a folder of PDFs or page images (or one file) to project')
        if not (self.project_pixel_weight or self.project_critic_feature_weight):
            raise ConfigError('project_pixel_weight=0 and project_critic_feature_weight=0: nothing would compare the '
                              'pages; set either above 0')
        documents = tuple(find_page_documents(self.project_pages))
        model = sampling_model(self.inference_model_directory or self.log_dir, self.inference_model_path,
                               self.gan_output_size, self.pretrained_model, earlier)
        settings = ProjectionSettings(self.project_steps, self.project_pixel_weight, self.project_critic_feature_weight,
                                      self.project_latent_prior_weight, self.project_start_candidates)
        signature = {'model': model.path, 'model_kind': model.kind, 'size': model.size,
                     'pages': self.project_pages,
                     'documents': [[document.key, document.size_bytes] for document in documents],
                     'settings': dataclasses.asdict(settings)}
        folder, state = outputs.find_resumable_run(self.inference_output_directory, signature, RUN_FOLDER_PATTERN)
        return ProjectPlan(model=model, pages_path=self.project_pages, documents=documents,
                           run_folder=folder or next_run_folder(self.inference_output_directory, earlier),
                           resuming=folder is not None, pages_done=state['finished'] if state else 0,
                           settings=settings, batch_size=self.inference_batch_size, random_seed=self.random_seed,
                           contrast_stretch=self.contrast_stretch, signature=signature, has_critic=_has_critic(model))

    def describe(self, plan):
        settings = plan.settings
        critic = ('' if not plan.settings.critic_feature_weight else 'and its critic' if plan.has_critic else
                  '(it kept no critic: pixel and latent-prior terms only)')
        lines = [f'load {plan.model.describe()} {critic}',
                 f'read every page of {len(plan.documents)} document(s) under {plan.pages_path}, squared as the '
                 f'model\'s own pages were (its model.json; stretch with pdfium when it does not say)',
                 f'project {plan.batch_size} pages at a time: the nearest of {settings.start_candidates} random latents, '
                 f'then {settings.steps} L-BFGS steps on pixels x{settings.pixel_weight:g} + critic features '
                 f'x{settings.critic_feature_weight:g} + latent prior x{settings.latent_prior_weight:g}']
        if plan.resuming:
            lines.append(f'finish the stopped projection in {plan.run_folder} ({plan.pages_done} pages done there): '
                         'same model, documents and settings')
        lines.append(f'write {plan.latents_path}, {outputs.PAGES_FILE}, {outputs.ERRORS_FILE} and '
                     f'{outputs.SHEET_FILE} beside it')
        return lines

    def output_directory(self, plan):
        return plan.run_folder

    def run(self, plan):
        from deepzine.sampling.projection_model import load_projection_networks
        networks, rendering, collection_names = load_projection_networks(
            plan.model, critic_wanted=plan.settings.critic_feature_weight > 0)
        from deepzine.sampling.page_input import read_user_pages
        user_pages = read_user_pages(plan.documents, rendering)
        if user_pages.skipped:
            logger.warning('project: %d unreadable page(s) or document(s) skipped (named above); projecting the %d '
                           'others', len(user_pages.skipped), len(user_pages.sources))
        state = outputs.read_state(plan.run_folder) if plan.resuming else None
        if state and [tuple(source) for source in state['sources']] != [tuple(source) for source in user_pages.sources]:
            logger.warning('%s: its pages differ from the ones read now; projecting them again from the start',
                           plan.run_folder)
            state = None
        if state:
            logger.info('project: finishing %s, where %d of %d pages were done (it records the same model, documents '
                        'and settings)', plan.run_folder, state['finished'], len(state['sources']))
        else:
            seed = plan.random_seed if plan.random_seed is not None else int(np.random.SeedSequence().entropy % 2 ** 31)
            state = outputs.start_run(plan.run_folder, plan.signature, seed, user_pages.sources, user_pages.pages)
        latents = outputs.finished_latents(plan.run_folder, state, networks.latent_size)
        project_remaining(networks, plan, state, user_pages.pages, latents, collection_names)
        return plan.latents_path


def _has_critic(model):
    """False when the model certainly kept no discriminator (a SavedModel, a model folder without one)."""
    from deepzine.model.loading import MODEL_FOLDER, SAVED_MODEL
    from deepzine.model.model_folder import is_model_folder, read_model_json
    if model.kind == SAVED_MODEL:
        return False
    if model.kind == MODEL_FOLDER and is_model_folder(model.path):
        return 'discriminator' in read_model_json(model.path).get('networks', [])
    return True


def project_remaining(networks, plan, state, pages, latents, collection_names):
    """Project the pages not yet done, saving after each batch; then the side-by-side sheet and a summary."""
    from tqdm import tqdm

    from deepzine.sampling.projection import Projector
    projector = Projector(networks, plan.settings, state['seed'])
    collections_to_try = _one_hot_rows(len(collection_names)) if collection_names else [None]
    total, started = len(pages), time.monotonic()
    first_new = len(latents)
    with tqdm(total=total, initial=first_new, unit='page', desc='project', disable=None) as bar:
        for start in range(first_new, total, plan.batch_size):
            targets = pages[start:start + plan.batch_size]
            try:
                batch = projector.project(targets, collections_to_try, on_step=_advancing(bar, len(targets)))
            except KeyboardInterrupt:
                logger.info('project: stopped; %d of %d pages are kept in %s and the same command finishes the rest',
                            len(latents), total, plan.run_folder)
                raise
            state['results'] += outputs.result_rows(state, batch, start, collection_names)
            latents = np.concatenate([latents, batch.latents])
            outputs.save_progress(plan.run_folder, state, latents, collection_names)
            logger.info('project: %d of %d pages done', len(latents), total)
    _finish(networks, plan, state, pages, latents, collection_names, first_new, started)


def _finish(networks, plan, state, pages, latents, collection_names, first_new, started):
    generated = []
    for start in range(0, len(latents), plan.batch_size):
        rows = state['results'][start:start + plan.batch_size]
        vectors = (np.stack([_one_hot_rows(len(collection_names))[collection_names.index(row['collection'])]
                             for row in rows]) if collection_names else None)
        generated.append(np.asarray(networks.generate(latents[start:start + plan.batch_size], vectors)))
    sheet = outputs.write_sheet(plan.run_folder, pages, np.concatenate(generated), plan.contrast_stretch)
    errors = np.array([row['relative_error'] for row in state['results']])
    ratios = np.array([row['rms_error_255'] / max(row['start_rms_error_255'], 1e-9) for row in state['results']])
    seconds = time.monotonic() - started
    logger.info('project: %d pages in %s; relative error median %.3f (mean %.3f, worst %.3f); %.2f x the error of '
                'their nearest random start on average', len(latents), plan.run_folder, float(np.median(errors)),
                float(errors.mean()), float(errors.max()), float(ratios.mean()))
    if len(latents) > first_new:
        logger.info('project: %.3f pages/s this run; side by side: %s', (len(latents) - first_new) / seconds, sheet)


def _advancing(bar, page_count):
    """on_step for one batch: moves the page bar by the share of the batch's steps done."""
    reported = 0.0

    def advance(fraction):
        nonlocal reported
        bar.update(fraction * page_count - reported)
        reported = fraction * page_count
    return advance


def _one_hot_rows(count):
    return [np.eye(count, dtype=np.float32)[index] for index in range(count)]
