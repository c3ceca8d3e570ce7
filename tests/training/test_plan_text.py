"""The train plan says what the run costs and how long it takes: in --dry-run, at the start of training, at each phase."""

import collections
import logging
import os
import re
import subprocess
import sys

import pytest
import yaml

from deepzine.tensorflow_logs import TENSORFLOW_LINE
from deepzine.training import forecast as forecast_module
from deepzine.training.plan_text import disk_warning
from deepzine.training.trainer import train

from tests.training.helpers import REPO_ROOT, make_plan, plan_text, train_config

DiskUsage = collections.namedtuple('DiskUsage', 'total used free')


def phase_rows(text):
    """{phase name: its cost row's numbers} of a plan text."""
    rows = re.findall(r'^\s+(\d+x\d+ (?:stable|fade))\s+(\d+/\d+)\s+([\d.]+ k?)\s+([\d.]+ k?)\s+(\d+)\s+([\d,]+)\s+([\d,]+)'
                      r'\s+([\d.e-]+)\s+([\d.]+ [MGT]?FLOP)$', text, re.MULTILINE)
    return {row[0]: row[1:] for row in rows}


def test_the_plan_has_a_cost_row_per_phase_memory_disk_and_estimates(tmp_path, band_hdf5):
    text = plan_text(make_plan(train_config(tmp_path, band_hdf5, iterations_per_stage=100)))
    rows = phase_rows(text)
    assert list(rows) == ['4x4 stable', '8x8 fade', '8x8 stable', '16x16 fade', '16x16 stable']
    filters, _, _, batch, steps, images, gflop_per_image, _ = rows['16x16 stable']
    assert (filters, batch, steps, images) == ('8/8', '4', '100', '400') and float(gflop_per_image) > 0
    assert re.search(r'^memory at 16x16 \w+ \(batch 4, float32\): about [\d.]+ [MG]iB', text, re.MULTILINE)
    assert re.search(r'^disk: checkpoints and model folders need about [\d.]+ MiB in ', text, re.MULTILINE)
    here = [line for line in text.splitlines() if 'estimated' in line and 'this machine' in line]
    assert len(here) == 1 and re.search(r'this machine: \d+ (min|s)', here[0])
    # mixed_precision: null, so each GPU line assumes that GPU's own choice
    assert re.search(r'^  H100 \(80 GB, BF16 tensor cores\): \d+', text, re.MULTILINE)
    assert re.search(r'^  T4 \(16 GB, FP16 tensor cores\): \d+', text, re.MULTILINE)


def test_a_changed_key_changes_the_cost_at_once(tmp_path, band_hdf5):
    raw = train_config(tmp_path, band_hdf5, iterations_per_stage=100)
    small, large = (phase_rows(plan_text(make_plan(dict(raw, batch_size=batch)))) for batch in (4, 8))
    assert small['16x16 stable'][3:6] == ('4', '100', '400') and large['16x16 stable'][3:6] == ('8', '100', '800')
    assert small['16x16 stable'][7] != large['16x16 stable'][7]  # the phase's FLOP doubles


def test_a_short_disk_is_warned_about_before_training_in_one_line(tmp_path, band_hdf5, monkeypatch):
    raw = train_config(tmp_path, band_hdf5)
    forecast = make_plan(raw).forecast
    needed = forecast.disk_needed_bytes
    assert needed > 5 * 4 * (forecast.cost.generator_parameters + forecast.cost.discriminator_parameters)
    assert not forecast.disk_is_short and disk_warning(forecast, raw['log_dir']) is None
    monkeypatch.setattr(forecast_module.shutil, 'disk_usage', lambda path: DiskUsage(10 ** 12, 0, needed // 2))
    plan = make_plan(raw)
    warning = disk_warning(plan.forecast, plan.log_dir)
    assert plan.log_dir in warning and 'free' in warning and '\n' not in warning
    assert 'NOT ENOUGH' in plan_text(plan)


@pytest.mark.slow
def test_training_logs_the_estimate_and_the_run_time_left_at_each_phase(tmp_path, band_hdf5, caplog):
    raw = train_config(tmp_path, band_hdf5, gan_output_size=8, iterations_per_stage=2)
    with caplog.at_level(logging.INFO, logger='deepzine'):
        train(make_plan(raw))
    lines = [record.getMessage() for record in caplog.records]
    assert any(line.startswith('estimated time on this machine: ') for line in lines)
    assert any(line.startswith('memory at ') for line in lines)
    starts = [line for line in lines if line.startswith('phase ')]
    assert len(starts) == 3 and all('; run time left: about ' in line for line in starts)
    assert starts[0].endswith('(estimated)') and 'the estimated speed' in starts[-1]

    # More steps per phase: the run resumes inside its last phase, and the plan counts only what is left.
    resumed = plan_text(make_plan(dict(raw, iterations_per_stage=5)))
    assert 'left to train: from 8x8 stable step 2 (the costs below count from there)' in resumed
    assert list(phase_rows(resumed)) == ['8x8 stable'] and phase_rows(resumed)['8x8 stable'][4] == '3'


@pytest.mark.slow
def test_dry_run_through_the_command_line_with_a_set_key(tmp_path, band_hdf5):
    config = tmp_path / 'train.yaml'
    config.write_text(yaml.safe_dump(train_config(tmp_path, band_hdf5, iterations_per_stage=100)))
    environment = {key: value for key, value in os.environ.items() if key != 'TF_CPP_MIN_LOG_LEVEL'}  # as users run it
    result = subprocess.run([sys.executable, str(REPO_ROOT / 'wrapper.py'), str(config), '--dry-run', '--set',
                             'batch_size=8'], capture_output=True, text=True, cwd=tmp_path, env=environment)
    assert result.returncode == 0, result.stderr
    rows = phase_rows(result.stdout)
    assert rows['16x16 stable'][3:6] == ('8', '100', '800')
    assert 'memory at 16x16' in result.stdout and 'estimated time on this machine: ' in result.stdout
    assert not [line for line in result.stderr.splitlines() if TENSORFLOW_LINE.match(line.encode())]
