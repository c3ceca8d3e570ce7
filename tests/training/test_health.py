"""Training health: no alarm on healthy runs (the shipped curve, synthetic noise), early alarms on divergence, NaN and
collapse, and a state that resumes exactly."""

import csv
import json
import math

import numpy as np
import pytest

from deepzine.training.health import (RELATIVE_LIMIT, WARMUP_LINES, WINDOW_LINES, HealthMonitor, page_diameter,
                                      sample_diversity)
from deepzine.training.schedule import build_phases
from tests.training.helpers import REPO_ROOT, band_pages

# Two healthy runs' logged losses: the retired debian_manuals model (64x64 grey, kept as a fixture) and the shipped
# debian_libraries model (128x128 colour, three collections): (curve, gan_output_size, channels).
CURVES = {'debian_manuals': (REPO_ROOT / 'tests' / 'fixtures' / 'debian_manuals_training_curve.csv', 64, 1),
          'debian_libraries': (REPO_ROOT / 'pretrained_models' / 'debian_libraries' / 'training_curve.csv', 128, 3)}
CURVE_COLUMNS = {'loss/discriminator': 'discriminator_loss', 'loss/generator': 'generator_loss',
                 'loss/wasserstein_estimate': 'wasserstein', 'loss/gradient_penalty': 'gradient_penalty',
                 'loss/drift': 'drift'}


def phases_up_to(output_size, steps=100):
    return build_phases(output_size=output_size, iterations_per_stage=steps, batch_size=16,
                        batch_size_reduction_transition_size=256, reduced_batch_size=4)


def curve_lines(curve, output_size):
    """(phase, global step, metrics) of a logged run; the phase is told from schedule/size and alpha."""
    phases = {(phase.size, phase.kind): phase for phase in phases_up_to(output_size)}
    with open(curve, newline='') as handle:
        for row in csv.DictReader(handle):
            kind = 'fade' if float(row['schedule/alpha']) < 1 else 'stable'
            phase = phases[(int(row['schedule/size']), kind)]
            yield phase, int(row['step']), {name: float(row[column]) for column, name in CURVE_COLUMNS.items()}


def healthy_lines(rng, count, scale=1.0):
    """Loss lines as noisy as the shipped run's (its per-line spreads), around levels that wander like random walks."""
    def walk(start, step):
        return start + np.cumsum(rng.normal(0, step, count))

    penalty = np.exp(walk(math.log(rng.uniform(0.003, 0.05)), 0.05) + rng.normal(0, 0.3, count))
    drift = np.exp(2 * (walk(math.log(rng.uniform(0.1, 8.0)), 0.05) + rng.normal(0, 0.25, count)))
    wasserstein = walk(rng.uniform(-0.3, 0.6) * scale, 0.02 * scale) + rng.normal(0, 0.15 * scale, count)
    critic = -wasserstein + 10 * penalty + 0.001 * drift + rng.normal(0, 0.05 * scale, count)
    generator = rng.normal(0.5, 0.8, count)
    return [{'discriminator_loss': float(critic[line]), 'generator_loss': float(generator[line]),
             'wasserstein': float(wasserstein[line]), 'gradient_penalty': float(penalty[line]),
             'drift': float(drift[line])} for line in range(count)]


def feed(monitor, phase, lines, first_step=1):
    """Every alarm raised while feeding `lines` to `monitor`, as (line number, Alarm)."""
    alarms = []
    for number, metrics in enumerate(lines):
        alarm = monitor.observe_losses(phase, first_step + number, metrics)
        if alarm:
            alarms.append((number, alarm))
    return alarms


# --- no false alarms -------------------------------------------------------------------------------------------


@pytest.mark.parametrize('run', sorted(CURVES))
def test_healthy_real_runs_never_fire(run):
    curve, output_size, channels = CURVES[run]
    monitor = HealthMonitor(channels=channels)
    worst = {}
    for phase, step, metrics in curve_lines(curve, output_size):
        assert monitor.observe_losses(phase, step, metrics) is None, (phase.name, step)
        assert monitor.is_healthy(), (phase.name, step, monitor.unhealthy_reason())
        for name, value in monitor.scalars().items():
            worst[name] = max(worst.get(name, 0.0), value)
    assert set(worst) == {'health/discriminator_loss', 'health/wasserstein', 'health/gradient_penalty', 'health/drift'}
    assert max(worst.values()) < RELATIVE_LIMIT / 2  # measured 2.9 (debian_manuals): the alarm level keeps a margin


def test_synthetic_healthy_noise_never_fires():
    for seed in range(30):
        rng = np.random.default_rng(seed)
        monitor = HealthMonitor(channels=1)
        for phase in phases_up_to(64):
            assert feed(monitor, phase, healthy_lines(rng, 50)) == [], (seed, phase.name)


def test_history_restarts_with_each_phase():
    """A fade-in may start at levels 10x above the previous phase's: its first lines only build the new history."""
    rng = np.random.default_rng(0)
    monitor = HealthMonitor(channels=1)
    stable, fade = phases_up_to(16)[2:4]
    feed(monitor, stable, healthy_lines(rng, 30))
    assert 'health/gradient_penalty' in monitor.scalars()
    raised = [dict(line, gradient_penalty=line['gradient_penalty'] * 30) for line in healthy_lines(rng, 30)]
    assert feed(monitor, fade, raised) == []
    assert monitor.scalars()['health/gradient_penalty'] < 5


# --- divergence ------------------------------------------------------------------------------------------------


@pytest.mark.parametrize('signal, factor', [('gradient_penalty', 2.0), ('wasserstein', 2.0), ('drift', 4.0),
                                            ('discriminator_loss', 2.0)])
def test_exponential_growth_fires_within_a_few_lines_naming_the_signal(signal, factor):
    rng = np.random.default_rng(1)
    monitor = HealthMonitor(channels=1)
    phase = phases_up_to(32)[5]
    lines = healthy_lines(rng, 30)
    assert feed(monitor, phase, lines) == []
    growing = []
    for number, line in enumerate(healthy_lines(rng, 30, scale=0.5), start=1):
        grown = dict(line)
        grown[signal] = (lines[-1][signal] if signal != 'wasserstein' else 0.3) * factor ** number
        growing.append(grown)
    alarms = feed(monitor, phase, growing, first_step=31)
    number, alarm = alarms[0]
    assert number < 7
    assert alarm.signal == signal and alarm.rule == 'divergence' and alarm.value >= alarm.threshold
    assert alarm.description.startswith('divergence of ') and phase.name in alarm.description


def test_a_sudden_jump_fires_on_the_next_line_and_a_huge_one_at_once():
    rng = np.random.default_rng(2)
    phase = phases_up_to(16)[3]
    lines = healthy_lines(rng, 25)
    quiet = 0.001 / float(np.median([line['gradient_penalty'] for line in lines]))  # 3000x stays under the limit 10
    lines = [dict(line, gradient_penalty=line['gradient_penalty'] * quiet) for line in lines]
    for jump, expected_line in ((100, 1), (3000, 0)):
        monitor = HealthMonitor(channels=1)
        feed(monitor, phase, lines)
        jumped = [dict(line, gradient_penalty=0.001 * jump) for line in healthy_lines(rng, 3)]
        number, alarm = feed(monitor, phase, jumped)[0]
        assert (number, alarm.signal, alarm.rule) == (expected_line, 'gradient_penalty', 'divergence')


def test_a_critic_resting_near_zero_may_move_by_a_small_fraction_of_the_page_distance():
    """|W| of 0.001 rising to 0.1 is 100x its level, yet 0.6% of the distance between two 8x8 pages: noise."""
    rng = np.random.default_rng(8)
    monitor = HealthMonitor(channels=1)
    phase = phases_up_to(8)[2]
    lines = healthy_lines(rng, 30)
    resting = [dict(line, wasserstein=0.001 * rng.normal()) for line in lines[:20]]
    moved = [dict(line, wasserstein=0.1 + 0.01 * rng.normal()) for line in lines[20:]]
    assert feed(monitor, phase, resting + moved) == []


def test_one_spike_alone_does_not_fire_but_makes_a_checkpoint_unhealthy():
    rng = np.random.default_rng(3)
    monitor = HealthMonitor(channels=1)
    phase = phases_up_to(16)[4]
    lines = healthy_lines(rng, 20)
    feed(monitor, phase, lines)
    assert monitor.is_healthy()
    spike = dict(lines[-1], wasserstein=lines[-1]['wasserstein'] + 40 * max(0.05, abs(lines[-1]['wasserstein'])))
    assert monitor.observe_losses(phase, 21, spike) is None
    assert 'the Wasserstein estimate at' in monitor.unhealthy_reason()
    assert monitor.observe_losses(phase, 22, lines[-1]) is None
    assert monitor.is_healthy()


def test_wgan_gp_limits_fire_on_the_first_line_of_a_phase():
    """The first loss line of a run at learning_rate 5.0 (recorded): no history is needed to see it."""
    phase = phases_up_to(16)[0]
    first = {'discriminator_loss': 2200455.4, 'generator_loss': -3816.4, 'gradient_penalty': 217798.975,
             'wasserstein': -21989.4, 'drift': 5.0e6}
    alarm = HealthMonitor(channels=1).observe_losses(phase, 10, first)
    assert (alarm.signal, alarm.rule, alarm.threshold) == ('gradient_penalty', 'limit', 10.0)
    beyond = dict(first, gradient_penalty=0.1, wasserstein=-2.5 * page_diameter(4, 3))
    alarm = HealthMonitor(channels=3).observe_losses(phase, 10, beyond)
    assert (alarm.signal, alarm.rule) == ('wasserstein', 'limit')
    assert HealthMonitor(channels=1, gradient_penalty_weight=0.0).observe_losses(
        phase, 10, dict(first, wasserstein=0.5)) is None  # no penalty: its limit is off, and line 1 is in warm-up


@pytest.mark.parametrize('line_number', [0, 12])
def test_a_nan_fires_at_once(line_number):
    rng = np.random.default_rng(4)
    monitor = HealthMonitor(channels=1)
    phase = phases_up_to(8)[1]
    feed(monitor, phase, healthy_lines(rng, line_number))
    line = dict(healthy_lines(rng, 1)[0], gradient_penalty=math.nan, drift=math.inf)
    alarm = monitor.observe_losses(phase, 500, line)
    assert (alarm.signal, alarm.step, alarm.phase_name) == ('non_finite', 500, '8x8 fade')
    assert 'drift, gradient_penalty' in alarm.description
    assert monitor.unhealthy_reason() == alarm.description
    json.dumps(monitor.state(), allow_nan=False)  # strict JSON even with a NaN alarm pending


# --- collapse --------------------------------------------------------------------------------------------------


def pages(seed, count=16, size=16):
    return band_pages(count, size, seed=seed).astype(np.float32) / 127.5 - 1.0


def test_sample_diversity_is_the_mean_pairwise_rms_distance_of_clipped_pages():
    assert sample_diversity(np.zeros((16, 8, 8, 1), np.float32)) == 0.0
    opposite = np.stack([np.full((4, 4, 1), -1.0), np.full((4, 4, 1), 5.0)]).astype(np.float32)
    assert sample_diversity(opposite) == pytest.approx(2.0)  # 5 is shown as white (1)
    assert sample_diversity(opposite[:1]) == 0.0
    assert sample_diversity(pages(1)) == pytest.approx(sample_diversity(pages(2)), rel=0.3)


def test_pages_that_become_identical_fire_on_the_second_sample():
    monitor = HealthMonitor(channels=1)
    phase = phases_up_to(16)[4]
    real = pages(0)
    for step, seed in ((400, 1), (800, 2), (1200, 3)):
        assert monitor.observe_samples(phase, step, pages(seed), real) is None
    assert monitor.scalars()['health/sample_diversity'] > 0.5
    identical = np.repeat(pages(4)[:1], 16, axis=0)
    assert monitor.observe_samples(phase, 1600, identical, real) is None
    assert 'as diverse as the real pages' in monitor.unhealthy_reason()
    alarm = monitor.observe_samples(phase, 2000, identical, real)
    assert (alarm.signal, alarm.rule, alarm.value) == ('sample_diversity', 'collapse', 0.0)
    assert alarm.description.startswith('collapse of the samples')


def test_near_uniform_pages_at_the_start_of_a_run_do_not_fire_but_a_phase_entered_collapsed_does():
    """A fresh generator's pages are nearly alike, and grey, before they learn to differ: the rules arm only once the
    pages did. From then on, in every phase, collapsed pages fire, even when the phase began collapsed."""
    monitor = HealthMonitor(channels=1)
    fade, stable = phases_up_to(16)[3:5]
    real = pages(0)
    for step, spread in enumerate((0.1, 0.02, 0.005, 0.0, 0.0, 0.001, 0.01)):
        assert monitor.observe_samples(fade, step * 100, pages(step + 1) * spread - 0.5, real) is None
    assert monitor.scalars()['health/sample_diversity'] < 0.05
    for step, seed in ((2000, 1), (2100, 2)):
        monitor.observe_samples(fade, step, pages(seed), real)  # diverse: armed in the fade
    assert monitor.observe_samples(stable, 100, pages(1) * 0.0, real) is None  # one sample: not yet confirmed
    alarm = monitor.observe_samples(stable, 200, pages(2) * 0.0, real)
    assert (alarm.signal, alarm.rule, alarm.threshold) == ('sample_diversity', 'collapse', 0.15)


def test_a_healthy_dip_in_diversity_does_not_fire():
    monitor = HealthMonitor(channels=1)
    phase = phases_up_to(16)[4]
    real = pages(0)
    for step, factor in enumerate((1.0, 0.9, 0.6, 0.4, 0.35, 0.5, 0.8, 1.0)):
        generated = np.clip(pages(step + 1) * factor + (1 - factor) * 0.8, -1, 1)
        assert monitor.observe_samples(phase, step * 400, generated, real) is None


def test_nan_samples_fire_at_once():
    monitor = HealthMonitor(channels=1)
    generated = pages(1)
    generated[3, 2, 2, 0] = math.nan
    alarm = monitor.observe_samples(phases_up_to(8)[0], 400, generated, pages(0))
    assert alarm.signal == 'non_finite'


# --- state -----------------------------------------------------------------------------------------------------


def restored_copy(monitor):
    """A monitor continuing from `monitor.state()` after a trip through JSON, as a checkpoint keeps it."""
    copy = HealthMonitor(channels=monitor.channels, gradient_penalty_weight=monitor.gradient_penalty_weight)
    copy.continue_from(json.loads(json.dumps(monitor.state(), allow_nan=False)))
    return copy


def test_state_round_trips_and_a_restored_monitor_continues_identically():
    lines = list(curve_lines(*CURVES['debian_manuals'][:2]))
    rng = np.random.default_rng(5)
    diverging = [dict(line, gradient_penalty=0.02 * 3 ** number) for number, line in
                 enumerate(healthy_lines(rng, 12), start=1)]
    cut = 230  # inside the 16x16 stable phase, mid-history
    whole = HealthMonitor(channels=1)
    for phase, step, metrics in lines[:cut]:
        whole.observe_losses(phase, step, metrics)
    real = pages(0)
    whole.observe_samples(lines[cut][0], 777, pages(1), real)
    restored = restored_copy(whole)
    assert restored.state() == whole.state()
    phase = lines[cut][0]
    for number, metrics in enumerate([metrics for _, _, metrics in lines[cut:cut + 10]] + diverging):
        step = 5000 + number
        expected, got = whole.observe_losses(phase, step, metrics), restored.observe_losses(phase, step, metrics)
        assert got == expected
        assert restored.scalars() == whole.scalars()
    assert expected is not None and expected.signal == 'gradient_penalty'
    assert restored.unhealthy_reason() == whole.unhealthy_reason() == expected.description
    assert restored_copy(restored).state() == restored.state()


def test_an_unknown_state_format_starts_a_fresh_history():
    monitor = HealthMonitor(channels=1)
    phase = phases_up_to(8)[2]
    feed(monitor, phase, healthy_lines(np.random.default_rng(6), WARMUP_LINES + 2))
    monitor.continue_from({'format_version': 99, 'phase': monitor.state()['phase']})
    assert monitor.state()['phase'] is None and monitor.scalars() == {}


def test_the_history_a_loss_line_is_judged_on_stays_the_same_size():
    """What each line costs depends on the window kept, never on how long the phase has run."""
    rng = np.random.default_rng(7)
    monitor = HealthMonitor(channels=1)
    phase = phases_up_to(16)[4]
    sizes = []
    for step, metrics in enumerate(healthy_lines(rng, 500)):
        monitor.observe_losses(phase, step, metrics)
        sizes.append(len(json.dumps(monitor.state()['phase']['windows'])))
    windows = monitor.state()['phase']['windows']
    assert all(len(window) == WINDOW_LINES for window in windows.values())
    assert max(sizes[WINDOW_LINES:]) < 1.2 * sizes[WINDOW_LINES]


def test_non_finite_values_at_a_checkpoint_fire_and_a_resumed_phase_keeps_its_history():
    monitor = HealthMonitor(channels=1)
    phase = phases_up_to(8)[2]
    feed(monitor, phase, healthy_lines(np.random.default_rng(9), WARMUP_LINES + 2))
    assert monitor.observe_checkpoint(phase, 300, []) is None and monitor.is_healthy()
    restored = restored_copy(monitor)
    restored.begin_phase(phase)  # a resume inside the phase: the judged history stays
    assert restored.scalars() == monitor.scalars() != {}
    restored.begin_phase(phases_up_to(16)[3])  # the next phase starts its own
    assert restored.scalars() == {}
    alarm = monitor.observe_checkpoint(phase, 400, ['a network weight'])
    assert (alarm.signal, alarm.step) == ('non_finite', 400)
    assert alarm.description == 'non-finite values: a network weight became NaN or infinite'
    assert not monitor.is_healthy()


def test_black_pages_with_white_blots_are_diverse_but_unlike_the_real_pages():
    """What learning_rate 0.2 drew without the guard (bench/README.md): the collapse rule passes it, the statistics
    rule does not."""
    monitor = HealthMonitor(channels=1)
    phase = phases_up_to(16)[4]
    real = pages(0)
    rng = np.random.default_rng(3)
    blots = np.full((16, 16, 16, 1), -1.0, np.float32)
    for page in blots:
        top, left = rng.integers(0, 12, 2)
        page[top:top + 4, left:left + 4] = 1.0
    assert sample_diversity(blots) > sample_diversity(real)
    for step, seed in ((100, 1), (200, 2)):  # the fade looked right
        assert monitor.observe_samples(phases_up_to(16)[3], step, pages(seed), real) is None
    assert monitor.observe_samples(phase, 100, blots, real) is None
    alarm = monitor.observe_samples(phase, 200, blots, real)
    assert (alarm.signal, alarm.rule) == ('brightness_gap', 'statistics') and alarm.value > 1.0
    assert alarm.description.startswith('samples unlike the real pages (mean brightness -0.88 against ')
    assert not monitor.is_healthy()


def test_the_statistics_of_healthy_samples_never_fire_and_show_in_the_health_line():
    """Gaps as large as healthy runs on real pages showed (brightness 0.70, ink 0.19) pass."""
    monitor = HealthMonitor(channels=1)
    phase = phases_up_to(16)[4]
    real = np.full((16, 16, 16, 1), 0.94, np.float32)
    grey = np.full((16, 16, 16, 1), 0.41, np.float32)  # with the ink below: mean 0.24
    grey[:, :3] = -0.5  # 19% ink
    rng = np.random.default_rng(4)
    for step in range(100, 1000, 100):
        generated = grey + rng.normal(0, 0.02, grey.shape).astype(np.float32)
        assert monitor.observe_samples(phase, step, generated, real + rng.normal(0, 0.02, real.shape)) is None
    scalars = monitor.scalars()
    assert 0.6 < scalars['health/brightness_gap'] < 0.8 and 0.1 < scalars['health/ink_gap'] < 0.25
