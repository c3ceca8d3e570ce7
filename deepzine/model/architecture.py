"""What fixes the shapes and arithmetic of a generator/discriminator pair: the `Architecture`, and the filter widths.

Pure Python, no TensorFlow: the dry-run, the cost estimate and the checks
before any work build it without loading a framework. A run saves it in every
model folder (`model.json`), so sampling never needs the model keys again.
"""

import dataclasses
import json

from deepzine.sizes import sizes_between


def filter_widths(output_size, max_filter, min_filter, filter_num_reduction_transition_size, original_pretrained=False):
    """Filters per layer at each size, by the original DeepZine's `get_filter_num`, floored at `min_filter`.

    The original: max_filter below the transition size T, then max_filter / 2
    at T, / 4 at 2T, ... (its depth arithmetic: a block at size s used
    max_filter // 2 ** (log2(s) - log2(T) + 1) from s = T on). With its
    `pretrained_model: true` every size from 2T up had 16 filters: the rule its
    released models were trained with (max_filter 128, T 256: 128 up to 128,
    64 at 256, 16 at 512 and 1024). `min_filter` is this version's own floor,
    so a small max_filter never reaches a layer of 2 filters; min_filter: 1
    gives the original's exact widths.
    """
    widths = {}
    for size in sizes_between(4, output_size):
        halvings = 0
        if size >= filter_num_reduction_transition_size:
            halvings = 1 + (size // filter_num_reduction_transition_size).bit_length() - 1
        width = max_filter >> halvings
        if original_pretrained and halvings >= 2:
            width = 16
        widths[size] = max(min_filter, width)
    return widths


@dataclasses.dataclass(frozen=True)
class Architecture:
    """Everything that fixes the shapes and the arithmetic of a generator/discriminator pair."""
    latent_size: int
    channels: int
    output_size: int
    widths: dict                      # {size: filters} for every size 4..output_size
    equalized_learning_rate: bool = True
    normalize_latent: bool = True     # pixel-norm the latent first (paper); the original DeepZine did not
    minibatch_group_size: int = 4     # 0: the whole batch is one group (the original DeepZine)
    rgb_sizes: tuple = None           # sizes that have toRGB/fromRGB layers; None: all
    collection_count: int = 1         # collections the networks are conditioned on; 1: unconditional

    def __post_init__(self):
        object.__setattr__(self, 'widths', {int(size): int(width) for size, width in self.widths.items()})
        rgb_sizes = tuple(self.rgb_sizes) if self.rgb_sizes else tuple(self.sizes)
        object.__setattr__(self, 'rgb_sizes', rgb_sizes)
        missing = [size for size in self.sizes if size not in self.widths]
        if missing:
            raise ValueError(f'architecture has no width for sizes {missing}')

    def __hash__(self):  # widths is a dict: hash its items, so plans holding an Architecture stay hashable
        return hash((self.latent_size, self.channels, self.output_size, tuple(sorted(self.widths.items())),
                     self.equalized_learning_rate, self.normalize_latent, self.minibatch_group_size, self.rgb_sizes,
                     self.collection_count))

    @property
    def sizes(self):
        return sizes_between(4, self.output_size)

    @property
    def conditional(self):
        """Whether the networks take a collection besides the latent (see deepzine.model.networks)."""
        return self.collection_count > 1

    def to_json(self):
        data = dataclasses.asdict(self)
        data['widths'] = {str(size): width for size, width in self.widths.items()}
        data['rgb_sizes'] = list(self.rgb_sizes)
        return json.dumps(data, indent=2)

    @classmethod
    def from_keys(cls, channels, gan_output_size, latent_size, max_filter, min_filter,
                  filter_num_reduction_transition_size, equalized_learning_rate, minibatch_group_size, original=False,
                  collection_count=1):
        """From the model keys (deepzine.parameter_groups.ModelParameters), the data's channel count and the number
        of collections to condition on (1: none).

        original: the original DeepZine's own network (its `pretrained_model: true`):
        no weight scaling, no latent normalization, the whole batch as one
        minibatch-stddev group, and its pretrained widths; the keys that would
        say otherwise do not apply.
        """
        widths = filter_widths(gan_output_size, max_filter, min_filter, filter_num_reduction_transition_size,
                               original_pretrained=original)
        if original:
            equalized_learning_rate, minibatch_group_size = False, 0
        return cls(latent_size=latent_size, channels=channels, output_size=gan_output_size, widths=widths,
                   equalized_learning_rate=equalized_learning_rate, normalize_latent=not original,
                   minibatch_group_size=minibatch_group_size, collection_count=collection_count)
