"""The project stage as users run it: a folder of their pages -> latents, sheet and errors in a run folder; resumes."""

import csv
import logging
import os
import signal
import subprocess
import sys
import time

import numpy as np
import pytest
from PIL import Image

from deepzine import pipeline
from deepzine.parameters import ConfigError
from deepzine.sampling.project_stage import ProjectStage

from tests.data.documents import write_random_bytes

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
FAST = {'project_steps': 60, 'project_start_candidates': 64, 'random_seed': 0}


def write_generated_pages(model, folder, count, seed=5):
    """PNG pages the model drew (at twice its size: pages are squared down as load_data does); returns the latents."""
    latents = np.random.default_rng(seed).standard_normal((count, model.latent_size)).astype(np.float32)
    os.makedirs(folder, exist_ok=True)
    for index, page in enumerate(model.uint8_pages(latents)):
        Image.fromarray(page[..., 0]).resize((2 * model.size, 2 * model.size), Image.Resampling.NEAREST).save(
            os.path.join(folder, f'page_{index}.png'))
    return latents


def project_config(model, pages, output, **keys):
    return {'project': True, 'inference_model_path': model.path, 'project_pages': str(pages),
            'inference_output_directory': str(output), **FAST, **keys}


def test_pages_become_latents_a_sheet_and_errors_and_bad_pages_are_named(tiny_model, tmp_path, caplog):
    pages = tmp_path / 'my pages'
    write_generated_pages(tiny_model, pages, 3)
    write_random_bytes(pages / 'broken.pdf')
    (pages / 'notes.png').write_text('not an image')
    Image.new('L', (5, 7), 255).save(pages / 'thumbnail.png')
    with caplog.at_level(logging.INFO):
        pipeline.run(pipeline.prepare(project_config(tiny_model, pages, tmp_path / 'out')))
    run = tmp_path / 'out' / 'run-001'
    assert np.load(run / 'projected_latents.npy').shape == (3, tiny_model.latent_size)
    assert np.load(run / 'projected_pages.npy').shape == (3, 16, 16, 1)
    with open(run / 'projected_errors.csv') as handle:
        rows = list(csv.DictReader(handle))
    assert [(row['document'], row['page']) for row in rows] == [(f'page_{index}.png', '1') for index in range(3)]
    assert max(float(row['relative_error']) for row in rows) < 0.1
    assert Image.open(run / 'projected_sheet.png').size == (2 * 3 * 16, 16)  # three pairs side by side
    assert not (run / 'projected_collections.json').exists()  # an unconditional model
    for name, reason in (('broken.pdf', 'is not a PDF'), ('notes.png', 'not a readable image'),
                         ('thumbnail.png', 'less than half the model')):
        assert any(name in line and reason in line for line in caplog.text.splitlines()), name


class _StopAfterFirstBatch(logging.Handler):
    """Ctrl-C the moment the run says its first batch is saved."""

    def emit(self, record):
        if record.getMessage().startswith('project: 2 of'):
            raise KeyboardInterrupt


def test_a_stopped_projection_is_finished_by_the_same_command(tiny_model, tmp_path, caplog):
    pages = tmp_path / 'pages'
    write_generated_pages(tiny_model, pages, 4)
    config = project_config(tiny_model, pages, tmp_path / 'out', inference_batch_size=2)
    stopper = _StopAfterFirstBatch()
    logging.getLogger('deepzine.sampling.project_stage').addHandler(stopper)
    try:
        with caplog.at_level(logging.INFO), pytest.raises(KeyboardInterrupt):
            pipeline.run(pipeline.prepare(config))
    finally:
        logging.getLogger('deepzine.sampling.project_stage').removeHandler(stopper)
    run = tmp_path / 'out' / 'run-001'
    first_two = np.load(run / 'projected_latents.npy')
    assert len(first_two) == 2 and not (run / 'projected_sheet.png').exists()
    prepared = pipeline.prepare(config)
    assert 'finish the stopped projection in' in pipeline.describe_plan(prepared)
    with caplog.at_level(logging.INFO):
        pipeline.run(prepared)
    assert f'finishing {run}, where 2 of 4 pages were done' in caplog.text
    latents = np.load(run / 'projected_latents.npy')
    assert len(latents) == 4 and np.array_equal(latents[:2], first_two)
    assert not (tmp_path / 'out' / 'run-002').exists()
    changed = pipeline.prepare(dict(config, project_steps=61))  # other settings: a new run
    assert changed.steps[0][1].run_folder.endswith('run-002')
    finished = pipeline.prepare(config)  # the same again once finished: a new run too
    assert finished.steps[0][1].run_folder.endswith('run-002')


def test_a_killed_projection_resumes(tiny_model, tmp_path):
    pages = tmp_path / 'pages'
    write_generated_pages(tiny_model, pages, 3)
    command = [sys.executable, os.path.join(REPO_ROOT, 'wrapper.py'), 'project', tiny_model.path, str(pages),
               str(tmp_path / 'out'), '--batch', '1', '--steps', '300', '--seed', '0']
    process = subprocess.Popen(command, stderr=subprocess.PIPE, text=True, cwd=tmp_path)
    deadline = time.monotonic() + 180
    for line in process.stderr:
        if 'project: 1 of 3 pages done' in line or time.monotonic() > deadline:
            break
    process.send_signal(signal.SIGKILL)
    process.communicate()
    run = tmp_path / 'out' / 'run-001'
    assert len(np.load(run / 'projected_latents.npy')) == 1
    finished = subprocess.run(command, capture_output=True, text=True, cwd=tmp_path)
    assert finished.returncode == 0, finished.stderr[-2000:]
    assert f'finishing {run}, where 1 of 3 pages were done' in finished.stderr
    assert len(np.load(run / 'projected_latents.npy')) == 3


def test_projected_latents_drive_an_interpolation_framed_by_the_real_pages(tiny_model, tmp_path):
    pages = tmp_path / 'pages'
    write_generated_pages(tiny_model, pages, 3)
    config = project_config(tiny_model, pages, tmp_path / 'out')
    pipeline.run(pipeline.prepare(dict(config, interpolation=True, interpolation_method='linear',
                                       interpolation_frames=4, interpolation_real_page_frames=2)))
    run = tmp_path / 'out' / 'run-001'
    frames = sorted(name for name in os.listdir(run) if name.startswith('interpolation_0'))
    assert len(frames) == 2 + (4 * 2 + 1) + 2
    read = [np.asarray(Image.open(run / name)) for name in frames]
    real = np.load(run / 'projected_pages.npy')[..., 0]
    latents = np.load(run / 'projected_latents.npy')
    assert np.array_equal(read[0], real[0]) and np.array_equal(read[1], real[0])
    assert np.array_equal(read[-1], real[2])
    generated = np.clip(np.rint((tiny_model.pages(latents) + 1) * 127.5), 0, 255)[..., 0]
    assert np.abs(read[2].astype(int) - generated[0]).max() <= 1  # the walk starts on the first page's projection
    assert np.abs(read[-3].astype(int) - generated[2]).max() <= 1
    # the same walk from the file, in another run: rows chosen, no loop back
    again = {'interpolation': True, 'inference_model_path': tiny_model.path, 'interpolation_method': 'slerp',
             'inference_output_directory': str(tmp_path / 'walks'), 'interpolation_frames': 3,
             'interpolation_latents': str(run / 'projected_latents.npy'), 'interpolation_latent_rows': [2, 0],
             'interpolation_real_page_frames': 1}
    pipeline.run(pipeline.prepare(again))
    walk = tmp_path / 'walks' / 'run-001'
    names = sorted(name for name in os.listdir(walk) if name.startswith('interpolation_0'))
    assert len(names) == 1 + 4 + 1
    assert np.array_equal(np.asarray(Image.open(walk / names[0])), real[2])
    assert np.array_equal(np.asarray(Image.open(walk / names[-1])), real[0])


def test_configuration_errors(tiny_model, tmp_path):
    with pytest.raises(ConfigError, match='project_pages=None: set it'):
        pipeline.prepare({'project': True, 'inference_model_path': tiny_model.path})
    with pytest.raises(ConfigError, match=r'project_pages=.*nowhere: no such file or folder'):
        pipeline.prepare({'project': True, 'inference_model_path': tiny_model.path,
                          'project_pages': str(tmp_path / 'nowhere')})
    (tmp_path / 'empty').mkdir()
    with pytest.raises(ConfigError, match='no PDFs or page images'):
        pipeline.prepare({'project': True, 'inference_model_path': tiny_model.path,
                          'project_pages': str(tmp_path / 'empty')})
    np.save(tmp_path / 'inference_latents.npy', np.zeros((2, 8), np.float32))
    with pytest.raises(ConfigError, match=r'interpolation_real_page_frames=3: no real pages at .*inference_pages\.npy'):
        pipeline.prepare({'interpolation': True, 'inference_model_path': tiny_model.path,
                          'interpolation_latents': str(tmp_path / 'inference_latents.npy'),
                          'interpolation_real_page_frames': 3})


def test_the_project_command_refuses_a_wrong_model_in_one_line(tmp_path, capsys):
    from deepzine.cli import EXIT_CONFIG_ERROR, main
    (tmp_path / 'pages').mkdir()
    Image.new('L', (64, 64), 255).save(tmp_path / 'pages' / 'page.png')
    assert main(['project', str(tmp_path / 'no_model'), str(tmp_path / 'pages'), str(tmp_path / 'out')]) == EXIT_CONFIG_ERROR
    error = capsys.readouterr().err.strip()
    assert error.startswith('error: inference_model_path=') and len(error.splitlines()) == 1
    assert not (tmp_path / 'out').exists()


def test_the_stage_is_in_the_pipeline_between_training_and_sampling():
    names = [stage.toggle for stage in pipeline.stage_classes()]
    assert names.index('train') < names.index('project') < names.index('inference') < names.index('interpolation')
    assert ProjectStage.toggle == 'project'
