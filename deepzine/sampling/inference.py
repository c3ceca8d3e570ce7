"""The `inference` stage: sample pages from a trained generator into inference_output_directory.

    inference: true
    inference_model_directory: ./log      # or inference_model_path: ./log/128
    inference_output_num: 100              # -> inference_00000.png ... inference_00099.png

The network's shape comes from the saved run (deepzine.model.loading), so only
the model's location and gan_output_size are needed; the original DeepZine
required every training parameter again, batch size included.
"""

import logging
import os

from deepzine.parameter_groups import ModelFileParameters, ModelParameters, SampleOutputParameters
from deepzine.parameters import Parameter, positive
from deepzine.sampling.generation import (check_latents_file, check_model_exists, generate_numbered_images, load_page_generator, model_location,
                                          numbered_name, read_latents_file, remove_stale_numbered_files)
from deepzine.sampling.images import save_grid
from deepzine.sampling.latent_paths import make_random_generator, standard_normal_latents
from deepzine.stage import Stage

logger = logging.getLogger(__name__)

PAGE_PREFIX = 'inference'
PAGE_FORMATS = ('png', 'jpg', 'npy')


class InferenceStage(Stage, ModelParameters, ModelFileParameters, SampleOutputParameters):
    toggle = 'inference'

    inference = Parameter(False, 'bool', 'sample pages from a trained model into inference_output_directory')
    inference_output_num = Parameter(100, 'int', 'number of pages to sample (ignored when inference_input_latent is set: one page per row)', check=positive)
    inference_output_format = Parameter('png', 'str', 'png or jpg (uint8, clipped from [-1, 1]) or npy (the raw float32 generator output, unclipped)',
                                        choices=PAGE_FORMATS, aliases={'jpeg': 'jpg'})
    inference_input_latent = Parameter(None, 'path', '.npy of latents [N, latent_size] to render instead of random ones (N pages)')
    inference_grid = Parameter(False, 'bool', 'also write all pages tiled into one picture, inference_grid.png (or .jpg)')

    def validate(self):
        check_model_exists(self)
        check_latents_file('inference_input_latent', self.inference_input_latent)

    def page_paths_description(self):
        first = numbered_name(PAGE_PREFIX, 0, self.inference_output_format)
        if self.inference_input_latent:
            last = f'{PAGE_PREFIX}_<N-1>.{self.inference_output_format} (N = rows of inference_input_latent)'
        else:
            last = numbered_name(PAGE_PREFIX, self.inference_output_num - 1, self.inference_output_format)
        return f'{os.path.join(self.inference_output_directory, first)} ... {last}'

    def grid_path(self):
        extension = 'jpg' if self.inference_output_format == 'jpg' else 'png'
        return os.path.join(self.inference_output_directory, f'{PAGE_PREFIX}_grid.{extension}')

    def plan(self):
        if self.inference_input_latent:
            source = f'one page per latent in {self.inference_input_latent}'
        else:
            seed = 'a fresh random seed' if self.random_seed is None else f'random_seed {self.random_seed}'
            source = f'{self.inference_output_num} random latents ({seed})'
        lines = [f'load the {self.gan_output_size}px generator from {model_location(self)}',
                 f'sample {source} in batches of {self.inference_batch_size}',
                 f'write {self.page_paths_description()}']
        if self.inference_grid:
            lines.append(f'write the grid {self.grid_path()}')
        return lines

    def output_directory(self):
        return self.inference_output_directory

    def run(self):
        generator = load_page_generator(self)
        if self.inference_input_latent:
            latents = read_latents_file('inference_input_latent', self.inference_input_latent, generator.latent_size)
        else:
            latents = standard_normal_latents(self.inference_output_num, generator.latent_size, make_random_generator(self.random_seed))
        paths, pages = generate_numbered_images(generator, latents, self.inference_output_directory, PAGE_PREFIX,
                                                self.inference_output_format, self.inference_batch_size,
                                                keep_images=self.inference_grid)
        remove_stale_numbered_files(self.inference_output_directory, PAGE_PREFIX, PAGE_FORMATS, len(paths), self.inference_output_format)
        if self.inference_grid:
            save_grid(pages, self.grid_path())
        logger.info('inference: wrote %d pages (%s) to %s', len(paths), self.inference_output_format, self.inference_output_directory)
        return paths
