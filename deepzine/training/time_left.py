"""The run time left, said at each phase start: the plan's time estimate, scaled by how this run's phases so far
compared with it (a busy machine, a faster GPU than estimated)."""

import time

from deepzine.training.speed import format_duration


class TimeLeft:
    """`estimate` (deepzine.training.speed.TimeEstimate) covers the phases from `origin` = (phase index, step) on."""

    def __init__(self, estimate, origin):
        self.estimate, self.origin = estimate, origin
        self._real_sec, self._estimated_sec, self._mark = 0.0, 0.0, None

    def text(self, phase_index, step):
        """'; run time left: about ...' from `phase_index` at `step` to the end of the run ('' without an estimate).

        Only phases that ran to their end count as a measure: after a
        roll-back the steps run are not known here, and repeated steps are no
        measure of speed.
        """
        origin_index, origin_step = self.origin
        if self.estimate is None or phase_index < origin_index:
            return ''
        position = (phase_index - origin_index, step - origin_step if phase_index == origin_index else step)
        now = time.perf_counter()
        if self._mark and position == (self._mark[1][0] + 1, 0):
            marked_at, marked = self._mark
            self._real_sec += now - marked_at
            self._estimated_sec += self.estimate.seconds_left(*marked) - self.estimate.seconds_left(*position)
        self._mark = (now, position)
        measured = self._real_sec / self._estimated_sec if self._estimated_sec > 0 else None
        left = format_duration((measured or 1.0) * self.estimate.seconds_left(*position))
        return f'; run time left: about {left}' + (f' (this run so far at {1 / measured:.2f}x the estimated speed)'
                                                    if measured else ' (estimated)')
