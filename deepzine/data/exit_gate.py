"""Python calls inside tf.data pipelines that can never hang the interpreter's exit: `gated_numpy_function`.

Why: once Python starts finalizing, a thread other than the main one that
takes the GIL is ended on the spot (CPython up to 3.13; 3.14 parks it
forever). A tf.data worker thread inside a tf.numpy_function call at that
moment never returns to TensorFlow, and the iterator's destructor, run when
finalization frees an iterator still referenced (a global, a trainer
attribute), waits for that call forever. h5py makes it likelier: a thread
ended inside a read keeps h5py's global lock, and the next h5py call of any
thread waits on it for good (so does PageStore's own read lock). Measured
with a page_dataset iterator kept in a global: the exit hung in 6 of 20 runs,
in 8 of 8 with three iterators still filling their buffers, and in 2 of 30
with a reader that does not use h5py at all (os.pread + zlib). Through this
gate: 0 of 50 with one iterator, 0 of 50 with the three.

So each call goes through a gate held in TensorFlow, not Python: in the
graph a call first counts itself in, then reads a 'closed' flag; when closed
it returns placeholder outputs without calling Python. An atexit hook, run
while threads can still take the GIL, closes the gate and waits until every
call counted in has left. From then on no tf.data thread calls Python,
whatever iterators are alive, so they are freed at exit like any TF object.
The flag and the counter are two resource variables made with raw ops (so no
distribution strategy's variable creator turns them into mirrored ones) on
the CPU, where tf.data runs: one pair per process.
"""

import atexit
import logging
import threading
import time

import tensorflow as tf

logger = logging.getLogger(__name__)

EXIT_WAIT_SEC = 30.0  # longest a call already inside Python may take to return (one batch read)

_gate = None
_gate_lock = threading.Lock()


class _Gate:
    def __init__(self):
        with tf.init_scope(), tf.device('/device:CPU:0'):
            self.closed = tf.raw_ops.VarHandleOp(dtype=tf.bool, shape=[], shared_name='deepzine_exit_gate_closed')
            self.calls_inside = tf.raw_ops.VarHandleOp(dtype=tf.int64, shape=[],
                                                      shared_name='deepzine_exit_gate_calls_inside')
            tf.raw_ops.AssignVariableOp(resource=self.closed, value=False)
            tf.raw_ops.AssignVariableOp(resource=self.calls_inside, value=tf.constant(0, tf.int64))

    def close(self):
        """Stop every later call from entering Python, then wait for the calls inside to leave."""
        tf.raw_ops.AssignVariableOp(resource=self.closed, value=True)
        deadline = time.monotonic() + EXIT_WAIT_SEC
        while int(tf.raw_ops.ReadVariableOp(resource=self.calls_inside, dtype=tf.int64)) > 0:
            if time.monotonic() > deadline:
                logger.warning('a tf.data reader call did not return within %.0f s of exit; the exit may hang',
                               EXIT_WAIT_SEC)
                return
            time.sleep(0.001)  # releases the GIL, which the calls inside need to finish


def _close_at_exit():
    try:
        _gate.close()
    except Exception as error:  # noqa: BLE001 (an atexit hook must not print a traceback over the run's last lines)
        logger.warning('could not stop the tf.data readers before exit (%s); the exit may hang', error)


def _the_gate():
    global _gate
    with _gate_lock:
        if _gate is None:
            _gate = _Gate()
            # Registered after TensorFlow's import: it runs before any hook TensorFlow registered (last in, first out).
            atexit.register(_close_at_exit)
        return _gate


def gated_numpy_function(function, inputs, output_types, outputs_when_closed):
    """tf.numpy_function(function, inputs, output_types), or outputs_when_closed() once the process is exiting.

    For use inside tf.data map functions. `function` must not raise (return the
    problem as an output instead): a call that fails never counts itself out,
    and the exit would wait EXIT_WAIT_SEC for it.
    """
    gate = _the_gate()
    one = tf.constant(1, tf.int64)
    entered = tf.raw_ops.AssignAddVariableOp(resource=gate.calls_inside, value=one)
    with tf.control_dependencies([entered]):  # counted in before looking: the atexit hook sees every call that can open
        closed = tf.reshape(tf.raw_ops.ReadVariableOp(resource=gate.closed, dtype=tf.bool), [])
    outputs = tf.cond(closed, outputs_when_closed,
                      lambda: tf.numpy_function(function, inputs, output_types, stateful=False))
    with tf.control_dependencies(tf.nest.flatten(outputs)):
        left = tf.raw_ops.AssignSubVariableOp(resource=gate.calls_inside, value=one)
    with tf.control_dependencies([left]):
        return tf.nest.map_structure(tf.identity, outputs)
