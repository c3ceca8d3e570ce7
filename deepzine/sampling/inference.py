"""The `inference` stage: sample pages from a trained generator into a new run folder.

    inference: true
    inference_model_directory: ./log      # or inference_model_path: ./log/128
    inference_output_num: 100              # -> run-001/inference_00000.png ... inference_00099.png

Every run also saves its latents, `inference_latents.npy` (one row per page,
in page order), so pages you like can be sampled again or visited by an
interpolation (`interpolation_latents` + `interpolation_latent_rows`). The
network's shape comes from the saved model (deepzine.model.loading), so only
the model's location and gan_output_size are needed; the original DeepZine
required every training parameter again, batch size included.

A model conditioned on collections draws each page for one of
`inference_collections` (all of them by default, in equal blocks of pages:
the grid has a row per collection); the page's file name ends with its
collection (`inference_00003_music.png`) and `inference_collections.json`
beside the latents names each row's collection.
"""

import dataclasses
import logging
import os

import numpy as np

from deepzine.files import write_atomically
from deepzine.model.loading import load_generator
from deepzine.parameter_groups import ModelFileParameters, OutputSizeParameters, SampleOutputParameters, SeedParameters
from deepzine.parameters import Parameter, positive
from deepzine.sampling.generation import (check_collection_names, check_latents_file, next_run_folder, numbered_name,
                                          read_collections_file, read_latents_file, sampling_model,
                                          write_collections_file, write_numbered_images)
from deepzine.sampling.images import save_grid
from deepzine.sampling.latent_paths import make_random_generator, standard_normal_latents
from deepzine.stage import Stage

logger = logging.getLogger(__name__)

PAGE_PREFIX = 'inference'
PAGE_FORMATS = ('png', 'jpg', 'npy')
LATENTS_FILE = 'inference_latents.npy'
COLLECTIONS_FILE = 'inference_collections.json'


@dataclasses.dataclass(frozen=True)
class InferencePlan:
    model: object                 # deepzine.model.loading.ModelLocation
    run_folder: str
    page_count: int               # None: one page per row of latents_file
    latents_file: str
    page_format: str
    grid: bool
    batch_size: int
    random_seed: object
    contrast_stretch: bool
    collections: object           # names asked for (None: every collection of the model)

    @property
    def grid_path(self):
        extension = 'jpg' if self.page_format == 'jpg' else 'png'
        return os.path.join(self.run_folder, f'{PAGE_PREFIX}_grid.{extension}')


class InferenceStage(Stage, OutputSizeParameters, ModelFileParameters, SampleOutputParameters, SeedParameters):
    toggle = 'inference'
    summary = 'sample pages from a trained model'

    inference = Parameter(False, 'bool', 'sample pages from a trained model into a new run folder of inference_output_directory')
    inference_output_num = Parameter(100, 'int', 'number of pages to sample (ignored when inference_input_latent is set: one page per row)', check=positive)
    inference_output_format = Parameter('png', 'str', 'png or jpg (uint8, from [-1, 1]) or npy (the raw float32 generator output, unclipped)',
                                        choices=PAGE_FORMATS, aliases={'jpeg': 'jpg'})
    inference_input_latent = Parameter(None, 'path', '.npy of latents [N, latent_size] to render instead of random ones (N pages), e.g. the inference_latents.npy of an earlier run')
    inference_grid = Parameter(False, 'bool', 'also write all pages tiled into one picture, inference_grid.png (or .jpg)')
    inference_collections = Parameter('all', 'list', 'collections of a conditional model to draw pages for: names, e.g. [music, cards], or all (pages spread evenly over every collection, a grid row each)')

    def validate(self, earlier):
        check_latents_file('inference_input_latent', self.inference_input_latent)
        model = sampling_model(self.inference_model_directory or self.log_dir, self.inference_model_path,
                               self.gan_output_size, self.pretrained_model, earlier)
        requested = self.inference_collections
        requested = [requested] if isinstance(requested, str) else list(requested or ['all'])
        if model.collection_names is not None:
            check_collection_names('inference_collections', requested, model.collection_names)
        return InferencePlan(model=model, run_folder=next_run_folder(self.inference_output_directory, earlier),
                             page_count=None if self.inference_input_latent else self.inference_output_num,
                             latents_file=self.inference_input_latent, page_format=self.inference_output_format,
                             grid=self.inference_grid, batch_size=self.inference_batch_size,
                             random_seed=self.random_seed, contrast_stretch=self.contrast_stretch,
                             collections=None if requested == ['all'] else tuple(requested))

    def describe(self, plan):
        if plan.latents_file:
            source, last = f'one page per latent in {plan.latents_file}', f'{PAGE_PREFIX}_<N-1>.{plan.page_format}'
        else:
            seed = 'a fresh random seed' if plan.random_seed is None else f'random_seed {plan.random_seed}'
            source = f'{plan.page_count} random latents ({seed})'
            last = numbered_name(PAGE_PREFIX, plan.page_count - 1, plan.page_format)
        lines = [f'load {plan.model.describe()}',
                 f'sample {source} in batches of {plan.batch_size}',
                 f'write {os.path.join(plan.run_folder, numbered_name(PAGE_PREFIX, 0, plan.page_format))} ... {last}, '
                 f'and their latents {os.path.join(plan.run_folder, LATENTS_FILE)}']
        if plan.model.collection_names:
            lines.append(f'each page drawn for one of {", ".join(plan.collections or plan.model.collection_names)} '
                         f'(in equal blocks), its name in the file name; the collection of every page in '
                         f'{os.path.join(plan.run_folder, COLLECTIONS_FILE)}')
        if plan.grid:
            lines.append(f'write the grid {plan.grid_path}')
        return lines

    def output_directory(self, plan):
        return plan.run_folder

    def run(self, plan):
        generator = load_generator(plan.model, plan.batch_size)
        names = generator.collection_names
        chosen = check_collection_names('inference_collections', plan.collections, names)
        saved_rows = None
        if plan.latents_file:
            latents = read_latents_file('inference_input_latent', plan.latents_file, generator.latent_size)
            saved_rows = read_collections_file(plan.latents_file, names, 'inference_input_latent')
        else:
            latents = standard_normal_latents(plan.page_count, generator.latent_size, make_random_generator(plan.random_seed))
        rows = (saved_rows or in_equal_blocks(chosen, len(latents))) if names else None
        latents_path = os.path.join(plan.run_folder, LATENTS_FILE)
        write_atomically(latents_path, lambda handle: np.save(handle, latents, allow_pickle=False))
        if names:
            write_collections_file(latents_path, names, rows)
        collections = generator.one_hot([names.index(name) for name in rows]) if names else None
        paths, pages = write_numbered_images(generator, latents, plan.run_folder, PAGE_PREFIX, plan.page_format,
                                             plan.contrast_stretch, keep_images=plan.grid, collections=collections,
                                             collection_of_page=rows)
        if plan.grid:
            columns = -(-len(latents) // len(set(rows))) if names and not saved_rows else None
            save_grid(pages, plan.grid_path, columns)
        logger.info('inference: wrote %d pages (%s) and their latents to %s', len(paths), plan.page_format, plan.run_folder)
        return paths


def in_equal_blocks(names, count):
    """The collection of each of `count` pages: `names` in turn, each a block of equal size (within one page)."""
    return [names[index * len(names) // count] for index in range(count)]
