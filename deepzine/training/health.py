"""Training health: alarms for diverging losses and collapsing samples, judged on each loss line and sample grid.

Pure Python and numpy, cheap enough for every loss line (about 50 us, no
forward pass). The trainer feeds it each loss line and each sample grid; an
`Alarm` tells it to roll back to the last healthy checkpoint. The rules:

non-finite  Any loss (or generated pixel) NaN or infinite: alarm at once.

limits      Bounds that come from WGAN-GP itself, not from a dataset, judged
            on every line from the first:
            - gradient penalty above 100 / gradient_penalty_weight (10 at the
              paper's weight): the penalty asks for critic gradients of norm 1
              along real-fake lines; (|grad| - 1)^2 of 10 means norms around 4,
              and the penalty then outweighs everything else in the loss.
            - |Wasserstein estimate| above twice the page diameter
              2 * sqrt(size * size * channels) (pixels in [-1, 1]): D(real) -
              D(fake) is the integral of the critic's gradient along that very
              line, so a critic near norm 1 cannot exceed the distance between
              the pages. Healthy runs stay under 15% of it.

divergence  Each of the critic loss, |W|, the gradient penalty and the drift
            against its own recent history in this phase (the last 20 lines;
            history restarts with each phase, since a fade-in moves the
            levels 10x). health = magnitude / (median |x| + 1.4826 * MAD): a
            robust "how many times the recent level", never divided by a zero
            MAD. The drift D(real)^2 is judged on its square root (the critic's
            real-score size, in W's units): squared, its healthy wander spans
            100x within a phase. The critic quantities have a floor of 1% of the
            page diameter (0.001 for the unitless penalty), so a level that
            rests near zero does not make noise look like growth. Judged from the
            5th line of a phase; alarm at 10x on two lines in a row, or 100x on
            one. Healthy runs measured at most 4.6x on one line and 3.5x on two
            in a row (the debian_manuals curve, tests/fixtures, 2.9x), but for a lone
            13x spike of W early in a fade.

collapse    Diversity of the 16 generated pages (mean pairwise RMS distance,
            pixels clipped to [-1, 1] as a viewer sees them) over that of the
            16 real pages at the same size. Early pages may be nearly uniform
            (or pure noise), so the rule arms only once the ratio has reached
            0.5 in this phase, then fires when it falls below 0.2 x min(its
            phase peak, 1) on two samples in a row: pages five times more alike
            than the real ones, twice. A generator that enters a phase already
            collapsed never reaches 0.5 there: so once the run's samples have
            reached 0.5 in any phase, they must also stay above 0.15 of the real
            pages' diversity in every later one, from its 100th step on.
            Healthy runs on real pages measured 0.17 at the least (four runs,
            bench/README.md "Falling back to the automatic rate").

statistics  How the samples look beside the real pages, in plain numbers:
            the gap between their mean brightness (pixels in [-1, 1]) and the
            real pages', and between their ink (the share of pixels darker than
            mid-grey). A generator drawing black pages with a few white blots is
            diverse, so the collapse rule passes it, but its brightness is 1.9
            from the real pages' and its ink 0.96. Alarm when the brightness
            gap exceeds 1.0 or the ink gap 0.5 on two samples in a row. A
            fresh generator's grey starts far from paper white, so the rule
            arms once both gaps have been within a quarter of their limits on
            two samples in a row; armed, it stays armed for the rest of the run.
            Only samples from a phase's 100th step on count, here and for the
            diversity floor: a phase's first steps (and a run of a few steps
            per phase) say little about what the generator has learned. Healthy runs on real pages
            measured at most 0.70 and 0.19 (bench/README.md, "Collapse guard
            on real pages").

A checkpoint is healthy (`unhealthy_reason() is None`) when no alarm is
pending in this phase and the latest line and sample are inside those bounds,
even unconfirmed ones. `state()` holds this phase's history as plain JSON
values; the collapse guard (deepzine.training.guard) saves it in every
checkpoint, so a run resumed after Ctrl-C or SIGKILL continues exactly.
"""

import dataclasses
import math

import numpy as np

FORMAT_VERSION = 2  # 2: the guard's own state moved out (deepzine.training.guard)
WINDOW_LINES = 20
WARMUP_LINES = 4
RELATIVE_LIMIT = 10.0
RELATIVE_LIMIT_AT_ONCE = 100.0
CONFIRM_LINES = 2
MAD_TO_SIGMA = 1.4826  # MAD of a normal distribution times this is its standard deviation
CRITIC_FLOOR_DIAMETERS = 0.01
PENALTY_FLOOR = 0.001
WASSERSTEIN_LIMIT_DIAMETERS = 2.0
PENALTY_TERM_LIMIT = 100.0
ARMED_DIVERSITY = 0.5
COLLAPSE_FRACTION = 0.2
DIVERSITY_FLOOR = 0.15
BRIGHTNESS_GAP_LIMIT = 1.0
INK_GAP_LIMIT = 0.5
ARMED_STATISTICS_FRACTION = 0.25
SAMPLE_RULES_FROM_STEP = 100  # the statistics rule and the diversity floor judge samples from this step of a phase
CONFIRM_SAMPLES = 2

JUDGED_LOSSES = ('discriminator_loss', 'wasserstein', 'gradient_penalty', 'drift')
DIVERSITY = 'sample_diversity'
STATISTICS = ('brightness_gap', 'ink_gap')
NAMES = {'discriminator_loss': 'the critic loss', 'wasserstein': 'the Wasserstein estimate',
         'gradient_penalty': 'the gradient penalty', 'drift': 'the drift D(real)^2',
         DIVERSITY: 'the sample diversity', 'brightness_gap': 'the brightness of the samples',
         'ink_gap': 'the ink of the samples'}
STATISTIC_LIMITS = {'brightness_gap': BRIGHTNESS_GAP_LIMIT, 'ink_gap': INK_GAP_LIMIT}


@dataclasses.dataclass(frozen=True)
class Alarm:
    """What went wrong: `signal` (a loss name, 'sample_diversity' or 'non_finite'), the rule that fired ('non_finite',
    'limit', 'divergence', 'collapse'), the value against its threshold, and a one-line description for the log."""
    signal: str
    rule: str
    value: float
    threshold: float
    description: str
    phase_name: str
    step: int

    def __str__(self):
        return self.description

    def to_dict(self):
        # JSON has no NaN or infinity: those are stored as the strings float() reads back.
        return {name: value if not isinstance(value, float) or math.isfinite(value) else str(value)
                for name, value in dataclasses.asdict(self).items()}

    @classmethod
    def from_dict(cls, fields):
        return cls(**{**fields, 'value': float(fields['value']), 'threshold': float(fields['threshold'])})


def sample_diversity(images):
    """Mean RMS distance between two of the pages [N, H, W, C], pixels clipped to [-1, 1]; 0 with fewer than two.

    Clipping measures what a viewer sees and keeps one exploded pixel from
    hiding identical pages. A Gram matrix keeps memory at one copy of the batch.
    """
    count = len(images)
    if count < 2:
        return 0.0
    flat = np.clip(np.asarray(images, np.float32).reshape(count, -1), -1.0, 1.0)
    gram = (flat @ flat.T).astype(np.float64)
    squares = np.diag(gram)
    distances = np.maximum(squares[:, None] + squares[None, :] - 2.0 * gram, 0.0) / flat.shape[1]
    upper = np.triu_indices(count, 1)
    return float(np.sqrt(distances[upper]).mean())


def page_statistics(images):
    """{'brightness': mean pixel of the pages, 'ink': share of pixels darker than mid-grey} of pages [N, S, S, C] in
    [-1, 1], clipped as a viewer sees them."""
    pixels = np.clip(np.asarray(images, np.float32), -1.0, 1.0)
    return {'brightness': float(pixels.mean()), 'ink': float(np.mean(pixels < 0.0))}


def page_diameter(size, channels):
    """Largest distance between two pages of size x size x channels with pixels in [-1, 1]."""
    return 2.0 * math.sqrt(size * size * channels)


def _median(values):
    ordered = sorted(values)
    middle = len(ordered) // 2
    return ordered[middle] if len(ordered) % 2 else 0.5 * (ordered[middle - 1] + ordered[middle])


def _new_phase_defaults():
    """What a phase history of an older checkpoint may lack."""
    return {'statistics': {}, 'unlike': 0, 'alike': 0, 'settled': False}


def _new_phase(phase):
    return {'index': phase.index, 'name': phase.name, 'size': phase.size, 'lines': 0,
            'windows': {name: [] for name in JUDGED_LOSSES}, 'above': {name: 0 for name in JUDGED_LOSSES},
            'health': {}, 'diversity': None, 'peak_diversity': 0.0, 'below': 0, 'alarm': None,
            'statistics': {}, 'unlike': 0, 'alike': 0, 'settled': False}


class HealthMonitor:
    """Watches one run's loss lines and sample grids; see the module docstring for the rules.

    `channels` of the pages and the run's `gradient_penalty_weight` set the
    WGAN-GP limits (0: no penalty, no penalty limit). `phase` arguments are
    `schedule.Phase` (index, size, name); a new phase index restarts the
    per-phase history by itself.
    """

    def __init__(self, channels, gradient_penalty_weight=10.0):
        self.channels, self.gradient_penalty_weight = int(channels), float(gradient_penalty_weight)
        self._phase = None
        # Once the run's samples have looked like real pages (in any phase), the sample rules judge every later grid.
        self.armed = {'statistics': False, 'diversity': False}

    # --- observing -----------------------------------------------------------------------------------------

    def begin_phase(self, phase):
        """Training (re)enters `phase`: its history continues if this monitor holds it (a resume), else restarts."""
        self._enter(phase)

    def observe_checkpoint(self, phase, step, non_finite):
        """Judge the state about to be saved: `non_finite` lists what holds a NaN or infinity ('a network weight',
        'a loss since the last line'); any of them is an Alarm."""
        self._enter(phase)
        if not non_finite:
            return None
        return self._raise(Alarm('non_finite', 'non_finite', math.nan, math.inf,
                                 f'non-finite values: {" and ".join(non_finite)} became NaN or infinite', phase.name,
                                 step))

    def observe_losses(self, phase, step, metrics):
        """Judge one loss line (interval means by name, as the trainer logs them); an Alarm or None."""
        current = self._enter(phase)
        bad = sorted(name for name, value in metrics.items() if not math.isfinite(value))
        if bad:
            return self._raise(Alarm('non_finite', 'non_finite', math.nan, math.inf,
                                     f'non-finite losses: {", ".join(bad)} became NaN or infinite', phase.name, step))
        alarms = self._limit_alarms(phase, step, metrics)
        diameter = page_diameter(phase.size, self.channels)
        judged = current['lines'] >= WARMUP_LINES
        for name in JUDGED_LOSSES:
            # W and the critic loss stay signed, so a level crossing zero keeps its spread.
            value = math.sqrt(max(metrics[name], 0.0)) if name == 'drift' else float(metrics[name])
            window = current['windows'][name]
            if judged:
                floor = PENALTY_FLOOR if name == 'gradient_penalty' else CRITIC_FLOOR_DIAMETERS * diameter
                center = _median(window)
                spread = MAD_TO_SIGMA * _median([abs(past - center) for past in window])
                level = max(_median([abs(past) for past in window]) + spread, floor)
                health = abs(value) / level
                current['health'][name] = health
                current['above'][name] = current['above'][name] + 1 if health >= RELATIVE_LIMIT else 0
                if health >= RELATIVE_LIMIT_AT_ONCE or current['above'][name] >= CONFIRM_LINES:
                    alarms.append(self._divergence(name, metrics[name], health, level, phase, step))
            window.append(value)
            del window[:-WINDOW_LINES]
        current['lines'] += 1
        if not alarms:
            return None
        return self._raise(max(alarms, key=lambda alarm: alarm.value / alarm.threshold if alarm.rule != 'limit'
                               else math.inf))

    def observe_samples(self, phase, step, generated, real):
        """Judge one sample grid: 16 generated pages and the phase's real ones, float [N, S, S, C]; an Alarm or None."""
        current = self._enter(phase)
        if not np.all(np.isfinite(generated)):
            return self._raise(Alarm('non_finite', 'non_finite', math.nan, math.inf,
                                     'non-finite samples: the generated pages hold NaN or infinite pixels', phase.name,
                                     step))
        settled = current['settled'] = step >= SAMPLE_RULES_FROM_STEP
        alarm = self._judge_statistics(current, phase, step, generated, real, settled)
        real_diversity = sample_diversity(real)
        if real_diversity <= 0.0:
            return alarm  # identical real pages: no diversity to compare with
        generated_diversity = sample_diversity(generated)
        ratio = generated_diversity / real_diversity
        current['diversity'] = ratio
        current['peak_diversity'] = max(current['peak_diversity'], ratio)
        threshold = self._collapse_threshold(current, settled)
        self.armed['diversity'] = self.armed['diversity'] or (settled and ratio >= ARMED_DIVERSITY)
        current['below'] = current['below'] + 1 if threshold is not None and ratio < threshold else 0
        if alarm or current['below'] < CONFIRM_SAMPLES:
            return alarm
        return self._raise(Alarm(
            DIVERSITY, 'collapse', ratio, threshold,
            f'collapse of the samples (the generated pages are {ratio:.2f}x as diverse as the real ones, mean pairwise '
            f'RMS {generated_diversity:.3g} vs {real_diversity:.3g}, after {current["peak_diversity"]:.2f}x in this '
            f'phase; alarm below {threshold:.2f}x on {CONFIRM_SAMPLES} samples in a row)', phase.name, step))

    def _judge_statistics(self, current, phase, step, generated, real, settled):
        """The statistics rule (see the module docstring): an Alarm or None; keeps the gaps for the health line."""
        made, wanted = page_statistics(generated), page_statistics(real)
        gaps = {'brightness_gap': abs(made['brightness'] - wanted['brightness']), 'ink_gap': abs(made['ink'] - wanted['ink'])}
        current['statistics'] = gaps
        if not settled:
            return None
        alike = all(gaps[name] <= ARMED_STATISTICS_FRACTION * limit for name, limit in STATISTIC_LIMITS.items())
        current['alike'] = current['alike'] + 1 if alike else 0
        self.armed['statistics'] = self.armed['statistics'] or current['alike'] >= CONFIRM_SAMPLES
        over = [name for name, limit in STATISTIC_LIMITS.items() if gaps[name] > limit]
        current['unlike'] = current['unlike'] + 1 if over and self.armed['statistics'] else 0
        if current['unlike'] < CONFIRM_SAMPLES:
            return None
        name = max(over, key=lambda name: gaps[name] / STATISTIC_LIMITS[name])
        return self._raise(Alarm(
            name, 'statistics', gaps[name], STATISTIC_LIMITS[name],
            f'samples unlike the real pages (mean brightness {made["brightness"]:+.2f} against {wanted["brightness"]:+.2f}, '
            f'ink {made["ink"]:.2f} against {wanted["ink"]:.2f}; alarm when the brightness differs by over '
            f'{BRIGHTNESS_GAP_LIMIT:g} or the ink by over {INK_GAP_LIMIT:g} on {CONFIRM_SAMPLES} samples in a row)',
            phase.name, step))

    # --- reading -------------------------------------------------------------------------------------------

    def scalars(self):
        """{'health/<signal>': value} to log and write to TensorBoard at each loss line; signals not yet judged in this
        phase are absent. Losses: times their recent level (alarm at 10). Samples: generated / real diversity (1 =
        as diverse as the real pages, the latest sample's)."""
        if self._phase is None:
            return {}
        values = {f'health/{name}': value for name, value in self._phase['health'].items()}
        if self._phase['diversity'] is not None:
            values[f'health/{DIVERSITY}'] = self._phase['diversity']
        values.update({f'health/{name}': value for name, value in self._phase.get('statistics', {}).items()})
        return values

    def unhealthy_reason(self):
        """None when a checkpoint taken now is healthy, else why not (one line)."""
        current = self._phase
        if current is None:
            return None
        if current['alarm'] is not None:
            return current['alarm'].description
        high = [f'{NAMES[name]} at {health:.1f}x its recent level' for name, health in current['health'].items()
                if health >= RELATIVE_LIMIT]
        if high:
            return ', '.join(high)
        threshold = self._collapse_threshold(current, current['settled'])
        if threshold is not None and current['diversity'] < threshold:
            return f'the samples are {current["diversity"]:.2f}x as diverse as the real pages (below {threshold:.2f}x)'
        over = [f'{NAMES[name]} {gap:.2f} from the real pages\'' for name, gap in current['statistics'].items()
                if gap > STATISTIC_LIMITS[name]]
        if over and self.armed['statistics'] and current['settled']:
            return ', '.join(over)
        return None

    def is_healthy(self):
        return self.unhealthy_reason() is None

    # --- state ---------------------------------------------------------------------------------------------

    def state(self):
        """This phase's history and which sample rules the run has armed, as plain JSON values (no NaN: a non-finite
        alarm's values are stored as strings)."""
        current = None
        if self._phase is not None:
            current = {**self._phase, 'alarm': self._phase['alarm'] and self._phase['alarm'].to_dict()}
        return {'format_version': FORMAT_VERSION, 'phase': current, 'armed': dict(self.armed)}

    def continue_from(self, state):
        """Take up what `state()` returned (format 1, of checkpoints of format 3, holds the same history; None or an
        unknown format: a fresh history, as in a new phase)."""
        self._phase, self.armed = None, {'statistics': False, 'diversity': False}
        known = state and state.get('format_version') in (1, FORMAT_VERSION)
        current = state.get('phase') if known else None
        if current is not None:
            self._phase = {**_new_phase_defaults(), **current,
                           'alarm': current['alarm'] and Alarm.from_dict(current['alarm'])}
        if known:
            self.armed.update(state.get('armed', {}))

    # --- rules ---------------------------------------------------------------------------------------------

    def _enter(self, phase):
        """This phase's history: kept while the phase lasts (a resume inside it too), new when another begins."""
        if self._phase is None or self._phase['index'] != phase.index:
            self._phase = _new_phase(phase)
        return self._phase

    def _raise(self, alarm):
        self._phase['alarm'] = alarm
        return alarm

    def _limit_alarms(self, phase, step, metrics):
        alarms = []
        if self.gradient_penalty_weight > 0:
            limit = PENALTY_TERM_LIMIT / self.gradient_penalty_weight
            if metrics['gradient_penalty'] > limit:
                alarms.append(Alarm('gradient_penalty', 'limit', metrics['gradient_penalty'], limit,
                                    f'divergence of the gradient penalty ({metrics["gradient_penalty"]:.4g} above its '
                                    f'limit {limit:.4g}: the critic\'s gradients are far from the unit norm WGAN-GP '
                                    f'asks for)', phase.name, step))
        diameter = page_diameter(phase.size, self.channels)
        limit = WASSERSTEIN_LIMIT_DIAMETERS * diameter
        if abs(metrics['wasserstein']) > limit:
            alarms.append(Alarm('wasserstein', 'limit', metrics['wasserstein'], limit,
                                f'divergence of the Wasserstein estimate ({metrics["wasserstein"]:.4g} beyond +-'
                                f'{limit:.4g}, twice the largest distance between two {phase.size}x{phase.size} '
                                f'pages: the critic is far from 1-Lipschitz)', phase.name, step))
        return alarms

    @staticmethod
    def _divergence(name, value, health, level, phase, step):
        measured = '; its square root is' if name == 'drift' else ','
        return Alarm(name, 'divergence', health, RELATIVE_LIMIT,
                     f'divergence of {NAMES[name]} ({value:.4g}{measured} {health:.0f}x its recent level {level:.3g} '
                     f'in {phase.name}; alarm at {RELATIVE_LIMIT:g}x on {CONFIRM_LINES} lines in a row or '
                     f'{RELATIVE_LIMIT_AT_ONCE:g}x at once)', phase.name, step)

    def _collapse_threshold(self, current, settled):
        """The diversity ratio below which samples count as collapsed (once the run's samples were diverse, and the
        phase has settled, never below the floor), or None while the rule is not armed."""
        if current['diversity'] is None:
            return None
        floor = DIVERSITY_FLOOR if self.armed['diversity'] and settled else None
        if current['peak_diversity'] < ARMED_DIVERSITY:
            return floor
        return max(COLLAPSE_FRACTION * min(current['peak_diversity'], 1.0), floor or 0.0)
