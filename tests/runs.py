"""`python wrapper.py CONFIG` in the background, as a user runs it, for the tests that interrupt or kill a run.

They choose the moment from what the run says: a line on its stderr (a log
line, or the `test hook: paused at ...` line of deepzine.test_hooks, which
also holds the run there), never from a timer, so they pass on a machine five
times faster or slower. Time limits here are bounds on a loaded machine, never
moments; the one promise that is timed is how soon a run stops.
"""

import os
import pathlib
import re
import signal
import subprocess
import sys
import threading
import time

import pytest
import yaml

from deepzine.test_hooks import VARIABLE as PAUSE_VARIABLE

REPOSITORY = pathlib.Path(__file__).resolve().parents[1]
SLOW_SEC = 300.0  # anything allowed to take its time on a loaded machine
STOP_SEC = 5.0  # the promise: from the signal to the exit
ADVICE = 'interrupted: stopped cleanly; re-run the same command to resume'


class Run:
    """The run, its stderr lines (collected as they come, unless stderr is given) and ways to wait for them."""

    def __init__(self, folder, config, pause=None, stderr=None, own_process_group=False):
        """pause: a test hook moment to hold the run at (deepzine.test_hooks), released by `release()`.

        own_process_group: a kill of the group then reaches the worker processes
        too, as a terminal's Ctrl-C or an out-of-memory kill of a job would.
        """
        folder = pathlib.Path(folder)
        path = folder / 'config.yaml'
        path.write_text(yaml.safe_dump(config))
        self.release_file = folder / 'release-the-paused-run'
        environment = {name: value for name, value in os.environ.items() if name != PAUSE_VARIABLE}
        if pause:
            environment[PAUSE_VARIABLE] = f'{pause}={self.release_file}'
        self.lines, self._ended, self._next_line = [], False, 0
        self._new_line = threading.Condition()
        self.process = subprocess.Popen([sys.executable, str(REPOSITORY / 'wrapper.py'), str(path)], cwd=folder,
                                        stdout=subprocess.DEVNULL, env=environment, text=True,
                                        stderr=subprocess.PIPE if stderr is None else stderr,
                                        start_new_session=own_process_group)
        self._reader = None
        if stderr is None:
            self._reader = threading.Thread(target=self._read, daemon=True)
            self._reader.start()

    def _read(self):
        for line in self.process.stderr:
            with self._new_line:
                self.lines.append(line.rstrip('\n'))
                self._new_line.notify_all()
        with self._new_line:
            self._ended = True
            self._new_line.notify_all()

    def wait_for_line(self, pattern, what=None, timeout_sec=SLOW_SEC):
        """The match of the first stderr line after those an earlier wait read that matches `pattern` (re.search);
        None if the run ends first (and fails then, unless `what` is None)."""
        deadline = time.monotonic() + timeout_sec
        with self._new_line:
            while True:
                while self._next_line < len(self.lines):
                    found = re.search(pattern, self.lines[self._next_line])
                    self._next_line += 1
                    if found:
                        return found
                if self._ended:
                    if what is None:
                        return None
                    self.process.wait(timeout=SLOW_SEC)
                    pytest.fail(f'the run ended (exit {self.process.returncode}) before {what}:\n' + self.last_lines())
                if not self._new_line.wait(timeout=max(0.0, deadline - time.monotonic())):
                    self.kill()
                    pytest.fail(f'no {what or pattern} after {timeout_sec} s:\n' + self.last_lines())

    def wait_until_paused(self, moment, count=1):
        """Wait until `count` processes of the run are held at the test hook `moment`."""
        for _ in range(count):
            self.wait_for_line(rf'^test hook: paused at {re.escape(moment)} ', f'the pause at {moment}')

    def wait_until(self, condition, what, timeout_sec=SLOW_SEC):
        """For what the run shows in files rather than in lines (polled; the run keeps working meanwhile)."""
        deadline = time.monotonic() + timeout_sec
        while not condition():
            if self.process.poll() is not None:
                pytest.fail(f'the run ended (exit {self.process.returncode}) before {what}:\n' + self.last_lines())
            if time.monotonic() > deadline:
                self.kill()
                pytest.fail(f'no {what} after {timeout_sec} s')
            time.sleep(0.02)

    def release(self):
        self.release_file.touch()

    def signal(self, signal_number):
        self.process.send_signal(signal_number)

    def stop_with(self, signal_number):
        """Send the signal; seconds until the process has exited (fails beyond twice the promise)."""
        started = time.monotonic()
        self.signal(signal_number)
        return self.exit_within(started)

    def exit_within(self, started):
        try:
            self.process.wait(timeout=max(0.0, started + 2 * STOP_SEC - time.monotonic()))
        except subprocess.TimeoutExpired:
            self.kill()
            pytest.fail(f'still running {2 * STOP_SEC} s after the signal')
        seconds = time.monotonic() - started
        if self._reader:
            self._reader.join(timeout=SLOW_SEC)
        return seconds

    def kill(self):
        """SIGKILL: the run's process group when it has its own (workers included), else the process."""
        if self.process.poll() is None:
            try:
                if os.getpgid(self.process.pid) == self.process.pid:
                    os.killpg(self.process.pid, signal.SIGKILL)
                else:
                    self.process.kill()
            except ProcessLookupError:
                pass
        self.process.wait(timeout=SLOW_SEC)
        if self._reader:
            self._reader.join(timeout=SLOW_SEC)

    def wait_for_exit(self):
        """Wait for a run that was told to stop, and for the last of its lines; its exit code."""
        self.process.wait(timeout=SLOW_SEC)
        if self._reader:
            self._reader.join(timeout=SLOW_SEC)
        return self.process.returncode

    def finish(self):
        """Wait for a run that should end by itself; it must succeed."""
        try:
            self.process.wait(timeout=SLOW_SEC)
        except subprocess.TimeoutExpired:
            self.kill()
            pytest.fail(f'the run did not finish in {SLOW_SEC} s')
        if self._reader:
            self._reader.join(timeout=SLOW_SEC)
        assert self.process.returncode == 0, self.last_lines()

    def text(self):
        return '\n'.join(self.lines)

    def last_lines(self, count=20):
        return '\n'.join(self.lines[-count:])
