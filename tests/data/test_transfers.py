import pytest

from deepzine.data.transfers import Transfers


class Session:
    def __init__(self):
        self.hooks = {'response': []}
        self.closed = False

    def close(self):
        self.closed = True


def test_every_argument_is_done_once_by_threads_with_their_own_sessions():
    sessions = []

    def new_session():
        sessions.append(Session())
        return sessions[-1]

    transfers = Transfers(new_session)
    seen = set(transfers.run_each(lambda session, number: (id(session), number * 2), range(20), workers=3))
    assert sorted(number for _, number in seen) == [number * 2 for number in range(20)]
    assert len(sessions) == 3 and {session for session, _ in seen} <= {id(session) for session in sessions}
    transfers.stop()
    assert all(session.closed for session in sessions)


def test_an_error_in_a_thread_is_raised_in_the_caller():
    """(Stopping at once is tested end to end in test_interrupts.py.)"""
    def work(session, number):
        if number == 3:
            raise OSError('connection reset')
        return number

    with pytest.raises(OSError, match='connection reset'):
        list(Transfers(Session).run_each(work, range(6), workers=2))

