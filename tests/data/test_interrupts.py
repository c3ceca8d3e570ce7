"""Ctrl-C and SIGTERM stop load_data within seconds in every phase, keep finished work, and the re-run continues.

Each run is `python wrapper.py CONFIG` in a subprocess, so the signal takes the
real path (the CLI's handlers, then the stage's clean-up). The moment of each
signal follows from what the run does (a stalled transfer of the fake archive,
workers held by the `rendering` test hook), never from a timer. Only the stop is
held to the promised 5 s; the re-runs get generous deadlines, as a loaded
machine may be slow to finish but must never be slow to stop.
"""

import fcntl
import glob
import hashlib
import os
import select
import shutil
import signal
import struct
import subprocess
import sys
import termios
import threading
import time

import h5py
import pytest

from deepzine.data.stage import LoadDataStage
from deepzine.parameters import registry, resolve
from tests.runs import ADVICE, SLOW_SEC, STOP_SEC, Run

from .documents import files_under, pdf_bytes, write_pdf
from .fake_archive import FakeArchive

REPOSITORY = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
MANIFEST = '.deepzine-download.json'
DOCUMENTS, PAGES = 6, 3

pytestmark = pytest.mark.skipif(not os.path.isdir('/proc/self/task'), reason='finds worker processes through /proc')


def child_processes(pid):
    """{pid: command line} of the processes `pid` started (its spawned workers, the resource tracker...)."""
    children = {}
    for listing in glob.glob(f'/proc/{pid}/task/*/children'):
        try:
            with open(listing, encoding='ascii') as handle:
                for child in map(int, handle.read().split()):
                    with open(f'/proc/{child}/cmdline', 'rb') as command:
                        children[child] = command.read().replace(b'\0', b' ').decode(errors='replace')
        except FileNotFoundError:  # that thread or child has just ended
            continue
    return children


def spawned_workers(children):
    return [pid for pid, command in children.items() if 'multiprocessing.spawn' in command]


def is_alive(pid):
    try:
        with open(f'/proc/{pid}/stat', encoding='ascii') as handle:
            state = handle.read().rsplit(')', 1)[1].split()[0]
    except (FileNotFoundError, ProcessLookupError):
        return False
    return state not in ('Z', 'X')  # an exited child nobody has reaped yet is gone too


def survivors(pids, grace_sec=5.0):
    """The processes still alive after a short grace (the resource tracker leaves when it reads end-of-file)."""
    deadline = time.monotonic() + grace_sec
    while any(is_alive(pid) for pid in pids) and time.monotonic() < deadline:
        time.sleep(0.05)
    return [pid for pid in pids if is_alive(pid)]


def page_pairs(path):
    with h5py.File(path, 'r') as handle:
        return list(zip(handle['pages/file'].asstr()[:], (int(number) for number in handle['pages/page_number'][:])))


def make_pdf_folder(tmp_path, documents=DOCUMENTS, pages=PAGES):
    for number in range(documents):
        write_pdf(str(tmp_path / 'pdfs' / f'doc{number:02d}.pdf'), pages)
    return {'load_data': True, 'data_source': 'pdf_directory', 'pdf_directory': str(tmp_path / 'pdfs'),
            'data_hdf5': str(tmp_path / 'pages.hdf5'), 'data_output_size': 16, 'conversion_workers': 2}


# --- downloads ------------------------------------------------------------------------------------------

@pytest.mark.parametrize('signal_number', [signal.SIGINT, signal.SIGTERM], ids=['SIGINT', 'SIGTERM'])
def test_downloads_stop_at_once_keep_finished_items_and_the_rerun_fetches_only_the_rest(tmp_path, signal_number):
    items = {f'item{number}': {f'item{number}.pdf': pdf_bytes(1 + number % 2)} for number in range(8)}
    pdfs = tmp_path / 'pdfs'
    with FakeArchive('COLL', items) as fake:
        for number in range(2, 8):
            fake.add_fault(f'item{number}', f'item{number}.pdf', 'stall')  # half the body, then nothing
        config = {'load_data': True, 'internetarchive_collection': 'COLL', 'internetarchive_host': fake.host,
                  'internetarchive_secure': False, 'pdf_directory': str(pdfs), 'data_hdf5': str(tmp_path / 'pages.hdf5'),
                  'data_output_size': 16, 'download_workers': 4, 'conversion_workers': 1}
        run = Run(tmp_path, config)
        # items 0 and 1 arrive; then all four workers hang mid-body in items 2 to 5, and 6 and 7 wait in the queue
        run.wait_until(lambda: (all((pdfs / f'item{number}' / MANIFEST).exists() for number in (0, 1))
                                and len(glob.glob(str(pdfs / '*' / '*.pdf.part'))) == 4),
                       'two finished items and four transfers hung mid-body')

        stop_sec = run.stop_with(signal_number)

        assert run.process.returncode == 128 + signal_number
        assert stop_sec < STOP_SEC
        assert run.lines[-1] == ADVICE
        assert any('(4 transfers cut mid-way)' in line for line in run.lines)  # aborted, not merely abandoned
        finished = [path for path in files_under(str(pdfs)) if not path.endswith('.part')]
        assert finished == ['item0/.deepzine-download.json', 'item0/item0.pdf',
                            'item1/.deepzine-download.json', 'item1/item1.pdf']

        fake.faults.clear()
        downloads_before = len(fake.downloads())
        Run(tmp_path, config).finish()

        assert sorted(fake.downloads()[downloads_before:]) == [f'/download/item{n}/item{n}.pdf' for n in range(2, 8)]
    for identifier, files in items.items():
        data = files[f'{identifier}.pdf']
        assert hashlib.md5((pdfs / identifier / f'{identifier}.pdf').read_bytes()).hexdigest() == hashlib.md5(data).hexdigest()
    assert not glob.glob(str(pdfs / '*' / '*.part'))
    assert len(page_pairs(tmp_path / 'pages.hdf5')) == sum(1 + number % 2 for number in range(8))


def test_a_hung_search_stops_at_once(tmp_path):
    with FakeArchive('COLL', {'item0': {'item0.pdf': pdf_bytes(1)}}, slow_sec=60) as fake:
        fake.add_fault('search', None, 'slow')
        run = Run(tmp_path, {'load_data': True, 'internetarchive_collection': 'COLL', 'internetarchive_host': fake.host,
                             'internetarchive_secure': False, 'pdf_directory': str(tmp_path / 'pdfs'),
                             'data_hdf5': str(tmp_path / 'pages.hdf5')})
        run.wait_until(lambda: fake.requests, 'the search request')
        assert run.stop_with(signal.SIGINT) < STOP_SEC
    assert run.process.returncode == 130 and run.lines[-1] == ADVICE


# --- rasterizing ----------------------------------------------------------------------------------------

def test_rasterizing_stops_at_once_ends_the_workers_and_the_rerun_packs_every_page_once(tmp_path):
    config = make_pdf_folder(tmp_path)
    run = Run(tmp_path, config, pause='rendering')
    run.wait_until_paused('rendering', count=2)  # each worker holds a chunk; the main process waits for them
    children = child_processes(run.process.pid)
    workers = spawned_workers(children)
    assert len(workers) == 2, children

    stop_sec = run.stop_with(signal.SIGINT)

    assert run.process.returncode == 130
    assert stop_sec < STOP_SEC
    assert run.lines[-1] == ADVICE
    assert [pid for pid in workers if is_alive(pid)] == []  # ended before the main process exited
    assert survivors(children) == []
    assert not os.path.exists(config['data_hdf5'])

    rerun = Run(tmp_path, config)
    rerun.finish()

    pairs = page_pairs(config['data_hdf5'])
    expected = {(f'doc{number:02d}.pdf', page) for number in range(DOCUMENTS) for page in range(1, PAGES + 1)}
    assert len(pairs) == len(expected) and set(pairs) == expected


def test_a_second_ctrl_c_while_stopping_exits_at_once(tmp_path):
    """A stop stuck writing to a full stderr (a frozen terminal, a stalled log pipe) ends on the second Ctrl-C."""
    config = make_pdf_folder(tmp_path, documents=4, pages=2)
    read_end, write_end = os.pipe()
    run = Run(tmp_path, config, pause='rendering', stderr=write_end)
    output = _read_until(read_end, b'test hook: paused at rendering', count=2)  # both workers hold a chunk
    children = child_processes(run.process.pid)

    # Fill the pipe from here: from now on every line the run writes to stderr blocks.
    page_bytes, stop_filling = os.sysconf('SC_PAGE_SIZE'), threading.Event()
    threading.Thread(target=_write_pages, args=(write_end, page_bytes, stop_filling), daemon=True).start()
    full_bytes = fcntl.fcntl(read_end, fcntl.F_GETPIPE_SZ) - page_bytes  # more than that: every page of it is taken
    run.wait_until(lambda: _unread_bytes(read_end) > full_bytes, 'a full stderr pipe')
    assert not _blocked_writing_to_a_pipe(run.process.pid)

    run.signal(signal.SIGINT)
    run.wait_until(lambda: _blocked_writing_to_a_pipe(run.process.pid), 'the clean stop writing its first line')
    second = time.monotonic()
    run.signal(signal.SIGINT)
    stop_sec = run.exit_within(second)

    assert run.process.returncode == 130
    assert stop_sec < STOP_SEC
    assert survivors(spawned_workers(children)) == []  # before reading: a surviving worker would hold the pipe open
    stop_filling.set()
    output += _read_all(read_end)  # the resource tracker writes its farewell here: it needs the pipe drained
    assert survivors(children) == []
    assert b'packing 4 documents' in output and ADVICE.encode() not in output  # the at-once exit: no advice


def _read_until(fd, text, count):
    """What the run wrote to the pipe until `text` has appeared `count` times (fails if it stops writing)."""
    output = b''
    while output.count(text) < count:
        readable, _, _ = select.select([fd], [], [], SLOW_SEC)
        assert readable, f'{text!r} did not appear {count} times:\n{output.decode(errors="replace")}'
        output += os.read(fd, 1 << 16)
    return output


def _blocked_writing_to_a_pipe(pid):
    """True while the main thread of `pid` waits inside a write to a full pipe (what the kernel says it does)."""
    with open(f'/proc/{pid}/wchan', encoding='ascii') as handle:
        return 'pipe_write' in handle.read()


def _write_pages(fd, page_bytes, stop):
    """Page-sized writes, each taking a page of the pipe, until `stop` is set; then close this write end."""
    while not stop.is_set():
        os.write(fd, b'.' * page_bytes)
    os.close(fd)


def _unread_bytes(fd):
    return struct.unpack('i', fcntl.ioctl(fd, termios.FIONREAD, b'\0' * 4))[0]


def _read_all(fd):
    chunks = []
    while chunk := os.read(fd, 1 << 16):
        chunks.append(chunk)
    os.close(fd)
    return b''.join(chunks)


WORKERS_THEN_EXIT_AT_ONCE = '''
import os, sys, time
from deepzine.data.workers import Workers

def hang(folder):
    # stands in for a PDF that hangs the rasterizer: says it has started, then never returns
    open(os.path.join(folder, str(os.getpid())), 'w').close()
    time.sleep(600)

if __name__ == '__main__':
    pool = Workers(2)
    for _ in range(2):
        pool.executor.submit(hang, sys.argv[1])
    while len(os.listdir(sys.argv[1])) < 2:  # both workers busy
        time.sleep(0.01)
    os._exit(1)
'''


def test_workers_end_with_the_main_process_however_it_ends(tmp_path):
    script, started, log = tmp_path / 'workers.py', tmp_path / 'started', tmp_path / 'stderr'
    script.write_text(WORKERS_THEN_EXIT_AT_ONCE)
    started.mkdir()
    with open(log, 'w') as stderr:  # a file, not a pipe: an orphaned worker would hold a pipe open
        subprocess.run([sys.executable, str(script), str(started)], cwd=REPOSITORY, stdout=subprocess.DEVNULL,
                       stderr=stderr, timeout=SLOW_SEC, env={**os.environ, 'PYTHONPATH': REPOSITORY}, check=False)
    workers = [int(name) for name in os.listdir(started)]
    assert len(workers) == 2, log.read_text()
    left = survivors(workers)
    for pid in left:
        os.kill(pid, signal.SIGKILL)
    assert left == []


# --- the final merge ------------------------------------------------------------------------------------

def _interrupt_when(function, condition, before=None):
    """function, except that a call for which condition(*arguments) holds runs `before` and raises KeyboardInterrupt."""
    def interrupted(*arguments, **keywords):
        if condition(*arguments):
            if before:
                before(*arguments, **keywords)
            raise KeyboardInterrupt
        return function(*arguments, **keywords)
    return interrupted


def run_stage(config):
    stage = LoadDataStage(resolve(config, registry([LoadDataStage])))
    return stage.run(stage.validate({}))


def _merged(source, target):
    return os.path.basename(target) == 'pages.hdf5'  # the merged file taking its final name


def _remove_run_record(folder, **keywords):
    os.remove(os.path.join(folder, 'run.json'))


@pytest.mark.parametrize('moment', ['merged, not renamed', 'renamed, segments not removed', 'segments half removed'])
@pytest.mark.parametrize('incremental', [False, True], ids=['new file', 'adding to a file'])
def test_an_interrupt_during_the_final_merge_leaves_a_file_the_rerun_completes(tmp_path, monkeypatch, moment, incremental):
    config = make_pdf_folder(tmp_path, documents=4, pages=3)
    config.update(conversion_workers=1, pdf_dpi=40)
    if incremental:
        run_stage(config)
        for number in range(4, 6):
            write_pdf(str(tmp_path / 'pdfs' / f'doc{number:02d}.pdf'), 3)
    with monkeypatch.context() as patch:
        if moment == 'merged, not renamed':
            patch.setattr(os, 'replace', _interrupt_when(os.replace, _merged))
        elif moment == 'renamed, segments not removed':
            patch.setattr(os, 'replace', _interrupt_when(os.replace, _merged, before=os.replace))
        else:
            patch.setattr(shutil, 'rmtree', _interrupt_when(shutil.rmtree, lambda path, *rest: path.endswith('.partial'),
                                                            before=_remove_run_record))
        with pytest.raises(KeyboardInterrupt):
            run_stage(config)
    if os.path.exists(config['data_hdf5']):  # the old file, or the new one complete: never a mix
        left = page_pairs(config['data_hdf5'])
        assert len(left) in (12, 18) and len(set(left)) == len(left)

    run_stage(config)

    pairs = page_pairs(config['data_hdf5'])
    expected = {(f'doc{number:02d}.pdf', page) for number in range(6 if incremental else 4) for page in (1, 2, 3)}
    assert len(pairs) == len(expected) and set(pairs) == expected
    assert sorted(os.listdir(tmp_path)) == ['pages.hdf5', 'pages_preview.png', 'pdfs']
