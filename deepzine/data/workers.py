"""The worker processes that rasterize documents: a pool that survives a crashed worker and stops on Ctrl-C.

Stopping (Ctrl-C, SIGTERM: a KeyboardInterrupt in the main process) ends the
workers at once instead of letting them finish the queue: the main process
terminates them (SIGTERM kills even a worker busy inside PDFium; SIGKILL
follows if one lingers), and the writer keeps every document it committed.
A terminal's Ctrl-C also reaches the workers (same process group); they do
not act on it, so they print no tracebacks and how they end stays the main
process's decision. And they end with the main process however it ends
(SIGKILL, the out-of-memory killer, a second Ctrl-C that exits at once):
an orphaned worker would otherwise finish its chunk, or hang on a bad PDF.

Processes, not threads: PDFium is not thread-safe, and Python-level squaring
would serialise on the GIL. 'spawn' because forking a process that may
already hold TensorFlow or HTTP threads can deadlock.
"""

import collections
import multiprocessing
import os
import signal
import threading
import time
from concurrent.futures import Future, ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool

_TERMINATE_GRACE_SEC = 1.0  # how long a terminated worker may take to die before it is killed


# --- in each worker ------------------------------------------------------------------------------------

def _start_worker():
    """Worker initializer: Ctrl-C does nothing here, and the worker ends with the main process (module docstring).

    A handler that returns, not SIG_IGN: an ignored signal stays ignored in
    the programs a worker starts (pdftoppm, Ghostscript), and those should
    still stop on a terminal's Ctrl-C.
    """
    signal.signal(signal.SIGINT, _do_nothing)
    threading.Thread(target=_exit_with_parent, name='exit-with-parent', daemon=True).start()


def _do_nothing(signal_number, frame):
    pass


def _exit_with_parent():
    # The parent's sentinel (a pipe) becomes readable when the parent is gone, whatever ended it; this thread
    # runs even while the main thread is inside PDFium, which releases the GIL.
    multiprocessing.parent_process().join()
    os._exit(1)


# --- in the main process -------------------------------------------------------------------------------

class _InlineExecutor:
    """The executor interface, run in this process: conversion_workers: 1 (also easiest to debug)."""

    def submit(self, function, *args):
        future = Future()
        try:
            future.set_result(function(*args))
        except Exception as error:  # noqa: BLE001 - delivered through the future like a process pool would
            future.set_exception(error)
        return future

    def map(self, function, *iterables, chunksize=1):
        return map(function, *iterables)

    def shutdown(self, wait=True, cancel_futures=False):
        pass


class Workers:
    """A process pool that can be rebuilt when a worker dies (e.g. PDFium crashing on a malicious PDF)."""

    def __init__(self, count):
        self.count = count
        self.lookahead = 2 * count + 1  # enough queued work to keep every worker busy, little memory held
        self.executor = self._new()

    def _new(self):
        if self.count == 1:
            return _InlineExecutor()
        executor = ProcessPoolExecutor(self.count, mp_context=multiprocessing.get_context('spawn'),
                                       initializer=_start_worker)
        try:
            executor.submit(os.getpid).result()
        except BrokenProcessPool:
            raise RuntimeError('conversion worker processes could not start; when load_data is called from your own '
                               "script, put the call under if __name__ == '__main__': (spawned workers import it), "
                               'or set conversion_workers: 1') from None
        except BaseException:
            _terminate(executor)
            raise
        return executor

    def restart(self):
        self.executor.shutdown(wait=False, cancel_futures=True)
        self.executor = self._new()

    def close(self):
        """After the last result: the idle workers exit."""
        try:
            self.executor.shutdown(wait=True, cancel_futures=True)
        except BaseException:
            self.terminate()
            raise

    def terminate(self):
        """Stop now: queued calls are dropped and the workers ended, whatever they are doing."""
        if not isinstance(self.executor, _InlineExecutor):
            _terminate(self.executor)

    def in_order(self, function, calls, crashed):
        """Yield (arguments, result) for each call, in order, with a bounded queue ahead.

        If a worker dies, the pool is rebuilt and the call retried alone once; if
        it kills a worker again, `crashed(*arguments)` stands in for its result.
        """
        pending = collections.deque()
        calls = iter(calls)
        while True:
            while len(pending) < self.lookahead:
                arguments = next(calls, None)
                if arguments is None:
                    break
                pending.append((arguments, self.executor.submit(function, *arguments)))
            if not pending:
                return
            arguments, future = pending.popleft()
            try:
                result = future.result()
            except BrokenProcessPool:
                self.restart()
                try:
                    result = self.executor.submit(function, *arguments).result()
                except BrokenProcessPool:
                    self.restart()
                    result = crashed(*arguments)
                # the other queued calls died with the old pool: queue them again
                pending = collections.deque((queued, self.executor.submit(function, *queued)) for queued, _ in pending)
            yield arguments, result


def _terminate(executor):
    """End a process pool's workers now (Python 3.14's terminate_workers(), for the versions before it)."""
    processes = list((executor._processes or {}).values())  # private, but the pool offers no other handle
    executor.shutdown(wait=False, cancel_futures=True)
    for process in processes:
        process.terminate()
    deadline = time.monotonic() + _TERMINATE_GRACE_SEC
    for process in processes:
        process.join(max(0.0, deadline - time.monotonic()))
        if process.is_alive():
            process.kill()
            process.join()
