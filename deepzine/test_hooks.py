"""Test hooks: a test can hold a run at a named moment, so tests that interrupt or kill it need no timers.

Off unless the environment variable DEEPZINE_TEST_PAUSE is set, which only the
tests do. With `DEEPZINE_TEST_PAUSE=<moment>=<file>`, every `pause_at(<moment>)`
the run reaches, in the main process or in a worker process, writes one line to
stderr, `test hook: paused at <moment> (<detail>)`, then waits until <file>
exists. The test reads that line and knows where the run is: it interrupts or
kills it there, whatever the machine's speed, or creates the file to let it go
on. A signal ends the wait as it would end any work (Ctrl-C stops cleanly).

The moments:
- 'rendering': a worker, before it renders a chunk of pages (deepzine.data.pack);
- 'segment committed': the page writer, right after a segment got its final name;
- 'merged': the page writer, the merged page file written but not yet renamed
  into place (deepzine.data.writer);
- 'encoding': the movie writer, after it handed ffmpeg a frame (deepzine.sampling.movie);
- '<size>x<size> <fade|stable> step <N>': training, after step N of that phase and
  what follows it (a loss line, a sample grid, a checkpoint) (deepzine.training.trainer);
- 'rolled back': the collapse guard, right after a roll-back was saved and logged
  (deepzine.training.guard).
"""

import os
import sys
import time

VARIABLE = 'DEEPZINE_TEST_PAUSE'
_POLL_SEC = 0.01


def pause_at(moment, detail=''):
    """Hold here while a test asks to (see the module docstring); nothing at all otherwise."""
    moment_asked, _, release_file = os.environ.get(VARIABLE, '').partition('=')
    if moment_asked != moment or os.path.exists(release_file):
        return
    sys.stderr.write(f'test hook: paused at {moment} ({detail})\n')
    sys.stderr.flush()
    while not os.path.exists(release_file):
        time.sleep(_POLL_SEC)
