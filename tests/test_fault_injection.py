"""SIGKILL load_data and train mid-way again and again, re-running after each: nothing lost, nothing twice, no leftovers.

A SIGKILL gives a process no chance to clean up, so this is the worst case a
power cut or an out-of-memory kill can do. The kills go to the whole process
group, worker processes included. They land where the run says it is, never
after a timer, so mid-way on any machine: load_data at each kind of moment it
passes (held there by a test hook), training at seeded random steps of its
loss lines.
"""

import os
import re

import h5py
import numpy as np
import pytest

from tests.data.documents import write_pdf
from tests.runs import Run
from tests.training.helpers import band_pages, train_config, write_page_hdf5

DOCUMENTS, PAGES_PER_DOCUMENT = 12, 3
# The kinds of moment a load_data run passes, in order (deepzine.test_hooks): before any page is rendered, with
# a committed segment (the first one the writer commits: mid-way, or all the documents), the merged page file
# written but not yet in place. Each kill leaves the next run something to resume.
DATA_MOMENTS = ('rendering', 'segment committed', 'merged')
TRAINING_KILLS, STEPS, SAVE_INTERVAL_STEPS, LOSS_INTERVAL_STEPS = 2, 200, 20, 5  # kills at most at step 120
LOSS_LINE = re.compile(r'\bstep (\d+)/\d+')  # the training loss line: '4x4 stable step 25/200: D ...'


@pytest.mark.slow
def test_load_data_killed_again_and_again_ends_with_every_page_once(tmp_path):
    pdfs = tmp_path / 'pdfs'
    for number in range(DOCUMENTS):
        write_pdf(str(pdfs / f'doc{number:02d}.pdf'), PAGES_PER_DOCUMENT)
    data = tmp_path / 'data'
    config = {'load_data': True, 'data_source': 'pdf_directory', 'pdf_directory': str(pdfs), 'data_output_size': 16,
              'data_hdf5': str(data / 'pages.hdf5'), 'pdf_conversion_program': 'pdftoppm', 'conversion_workers': 2}
    for moment in DATA_MOMENTS:
        run = Run(tmp_path, config, pause=moment, own_process_group=True)
        run.wait_until_paused(moment)
        run.kill()
    Run(tmp_path, config).finish()
    with h5py.File(config['data_hdf5'], 'r') as handle:
        rows = list(zip(handle['pages/file'].asstr()[:], handle['pages/page_number'][:]))
        assert handle['data_16'].shape[0] == len(rows)
    assert sorted(rows) == [(f'doc{number:02d}.pdf', page) for number in range(DOCUMENTS)
                            for page in range(1, PAGES_PER_DOCUMENT + 1)]
    # no segment folder, no temporary: only what a finished run keeps
    assert sorted(os.listdir(data)) == ['pages.hdf5', 'pages_load_data.log', 'pages_load_data_config.yaml',
                                        'pages_preview.png']


def newest_checkpoint_step(log_dir):
    try:
        text = (log_dir / 'checkpoints' / 'checkpoint').read_text()
    except FileNotFoundError:
        return None
    found = re.search(r'^model_checkpoint_path: "ckpt-(\d+)"', text, re.MULTILINE)
    return int(found.group(1)) if found else None


@pytest.mark.slow
def test_training_killed_again_and_again_resumes_at_its_last_checkpoint(tmp_path):
    rng = np.random.default_rng(5)
    pages = write_page_hdf5(tmp_path / 'pages.hdf5', band_pages(32, 4))
    raw = train_config(tmp_path, pages, gan_output_size=4, iterations_per_stage=STEPS,
                       model_save_interval_steps=SAVE_INTERVAL_STEPS,
                       model_loss_output_interval_steps=LOSS_INTERVAL_STEPS, model_sample_interval_steps=1000)
    log_dir = tmp_path / 'log'
    saved = 0
    for _ in range(TRAINING_KILLS):
        run = Run(tmp_path, raw, own_process_group=True)
        # past at least one checkpoint of this run, then anywhere up to two more
        kill_step = saved + SAVE_INTERVAL_STEPS + LOSS_INTERVAL_STEPS * int(rng.integers(1, 9))
        while int(run.wait_for_line(LOSS_LINE, 'the loss line of the step to kill at').group(1)) < kill_step:
            pass
        run.kill()
        if saved:
            assert f'from ckpt-{saved} ' in run.text()  # resumed exactly where the killed run had saved
        assert newest_checkpoint_step(log_dir) > saved
        saved = newest_checkpoint_step(log_dir)
    run = Run(tmp_path, raw)
    run.finish()
    assert f'from ckpt-{saved} ' in run.text()
    assert newest_checkpoint_step(log_dir) == STEPS
    leftovers = [os.path.join(root, name) for root, folders, names in os.walk(log_dir) for name in folders + names
                 if '.partial' in name or name.endswith('_temp')]
    assert leftovers == []
