"""Worker threads for network transfers that stop at once: the downloads of deepzine.data.archive.

Stopping (Ctrl-C, SIGTERM: a KeyboardInterrupt in the main thread) takes
effect at once, however long the queue: the search and the downloads run in
daemon threads while the main thread only waits, so the signal always reaches
it; it then sets a stop event that cancels every queued item and every
back-off wait, and shuts down the socket of every transfer in flight so a
read blocked mid-body fails now instead of at its time-out. Daemon threads,
not a ThreadPoolExecutor: the interpreter joins an executor's threads at exit,
so a thread blocked where no socket can be cut (a DNS lookup, a connect)
would hold the process for up to `timeout_sec`; a daemon thread cannot.
"""

import queue
import threading
import weakref


class Stopped(BaseException):
    """The run is stopping: raised in worker threads, past every `except Exception` (ours and the client's)."""


class Transfers:
    """The worker threads, sessions and responses of one download run, so that the main thread can stop them all."""

    def __init__(self, new_session):
        self.new_session = new_session
        self.stopping = threading.Event()
        self._lock = threading.Lock()
        self._sessions = []
        self._responses = weakref.WeakSet()  # a finished response drops out by itself

    def open_session(self):
        """A session of this run (one per thread: requests sessions are not meant to be shared)."""
        session = self.new_session()
        session.hooks['response'].append(self._track)
        with self._lock:
            self._sessions.append(session)
        return session

    def _track(self, response, **kwargs):
        # Called once the headers are in, before a streamed body is read: the moment a transfer can be cut.
        with self._lock:
            self._responses.add(response)
        if self.stopping.is_set():
            _cut(response)
            raise Stopped()
        return response

    def run_each(self, function, arguments, workers):
        """Yield function(session, argument) for each argument, as they finish, from `workers` daemon threads.

        Each thread has its own session. The caller's thread only waits on a
        queue, which a signal interrupts at once; an exception in a thread is
        raised there.
        """
        pending, finished = queue.SimpleQueue(), queue.SimpleQueue()
        for argument in arguments:
            pending.put(argument)

        def work():
            try:
                session = self.open_session()
                while not self.stopping.is_set():
                    try:
                        argument = pending.get_nowait()
                    except queue.Empty:
                        return
                    finished.put((True, function(session, argument)))
            except Stopped:
                pass
            except BaseException as error:  # noqa: BLE001 - handed to the waiting thread, which raises it
                finished.put((False, error))

        threads = [threading.Thread(target=work, name=f'archive-{number}', daemon=True)
                   for number in range(min(workers, len(arguments)))]
        for thread in threads:
            thread.start()
        for _ in arguments:
            ok, value = finished.get()
            if not ok:
                raise value
            yield value
        for thread in threads:
            thread.join()

    def stop(self):
        """Cancel what is queued, cut what is in flight, close the sessions; returns the number of transfers cut."""
        self.stopping.set()
        with self._lock:
            responses, sessions = list(self._responses), list(self._sessions)
        cut = sum(_cut(response) for response in responses)
        for session in sessions:
            session.close()
        return cut


def _cut(response):
    """Shut down the socket a streamed response is reading from, so that a read blocked in another thread fails now.

    urllib3's HTTPResponse.shutdown (urllib3 2.3 and later) exists for exactly
    this; it refuses once the body is read and the connection handed back.
    """
    try:
        response.raw.shutdown()
    except (AttributeError, ValueError, RuntimeError, OSError):  # older urllib3, body already read, socket closed
        return False
    return True
