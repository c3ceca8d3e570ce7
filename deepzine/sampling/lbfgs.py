"""Limited-memory BFGS for a batch of independent problems: every row keeps its own curvature history and step length.

Projection (deepzine.sampling.projection) solves one small least-squares
problem per page: 128 latent numbers against thousands of pixels, in a long
curved valley of nearly equal pages. There Adam, the usual choice, converges
several times slower, and L-BFGS of the whole batch as one problem (what
scipy's minimize would do) stalls, because one shared line search and one
shared curvature history mix pages that have nothing in common
(bench/README.md, "Projection"). No installed library runs independent L-BFGS
problems as one batch (TensorFlow Probability's would, but it needs the
separate tf-keras package), and batching is what keeps a GPU busy, so this
module does, in numpy around the caller's batched function.

The algorithm is the textbook one (Nocedal and Wright, Numerical
Optimization, algorithms 7.4 and 3.1): the two-loop recursion over the last
`memory` curvature pairs, scaled by s.y / y.y of the newest, then a
backtracking line search to the Armijo condition. A pair whose curvature
s.y is not positive is kept with weight 0, so it changes nothing; a row
whose line search fails forgets its history and starts again from the
gradient.
"""

import numpy as np

ARMIJO_SLOPE = 1e-4
MAX_HALVINGS = 12
FIRST_STEP_LENGTH = 1.0  # length of the very first step (along the gradient), before any curvature is known


def _dot(a, b):
    return np.einsum('bn,bn->b', a, b)


class BatchLbfgs:
    """Minimise each row of `start` [B, n] on its own; `value_and_gradient(x, rows)` evaluates the rows given.

    value_and_gradient(x [b, n] float32, rows: int array [b] of row numbers)
    -> (values [b], gradients [b, n]): the callable knows which problem each
    row belongs to through `rows`, so a line search can re-evaluate only the
    rows that still need it.
    """

    def __init__(self, value_and_gradient, start, memory=10):
        self.evaluate = value_and_gradient
        self.x = np.array(start, np.float64)
        batch, size = self.x.shape
        self.all_rows = np.arange(batch)
        values, gradients = self._evaluate(self.x, self.all_rows)
        self.values, self.gradients = values, gradients
        self.steps_s = np.zeros((memory, batch, size))
        self.steps_y = np.zeros((memory, batch, size))
        self.rho = np.zeros((memory, batch))       # 1 / s.y, 0 for a pair that must not count
        self.scale = np.zeros(batch)               # s.y / y.y of the newest good pair; 0: none yet
        self.newest = -1
        self.failures = np.zeros(batch, int)       # line searches failed in a row: 2 means the row has converged
        self.row_evaluations = batch

    def _evaluate(self, x, rows):
        values, gradients = self.evaluate(x.astype(np.float32), rows)
        return np.asarray(values, np.float64), np.asarray(gradients, np.float64)

    def _direction(self):
        """-H g by the two-loop recursion, per row; rows without history get a step of FIRST_STEP_LENGTH along -g."""
        memory = len(self.rho)
        order = [(self.newest - age) % memory for age in range(memory)]
        q = self.gradients.copy()
        alphas = {}
        for slot in order:
            alphas[slot] = self.rho[slot] * _dot(self.steps_s[slot], q)
            q -= alphas[slot][:, None] * self.steps_y[slot]
        norms = np.linalg.norm(self.gradients, axis=1)
        first = FIRST_STEP_LENGTH / np.maximum(norms, 1e-30)
        r = np.where(self.scale[:, None] > 0, self.scale[:, None], first[:, None]) * q
        for slot in reversed(order):
            beta = self.rho[slot] * _dot(self.steps_y[slot], r)
            r += (alphas[slot] - beta)[:, None] * self.steps_s[slot]
        direction = -r
        uphill = _dot(direction, self.gradients) >= 0  # rounding can make -Hg point uphill: fall back to -g
        direction[uphill] = -self.gradients[uphill] * first[uphill, None]
        return direction

    @property
    def converged(self):
        """Rows at a zero gradient, or where neither the curvature step nor the gradient step found a lower value:
        they move no more (and cost no more evaluations)."""
        return self.failures >= 2

    def step(self):
        """One iteration for every row still moving: direction, line search, curvature update."""
        direction = self._direction()
        slope = _dot(direction, self.gradients)
        length = np.ones(len(self.x))
        new_x, new_values, new_gradients = self.x.copy(), self.values.copy(), self.gradients.copy()
        self.failures[~np.any(self.gradients, axis=1)] = 2  # a zero gradient: a stationary point, nothing to follow
        pending = self.all_rows[~self.converged]
        for _ in range(MAX_HALVINGS + 1 if len(pending) else 0):
            trial = self.x[pending] + length[pending, None] * direction[pending]
            values, gradients = self._evaluate(trial, pending)
            self.row_evaluations += len(pending)
            accepted = np.isfinite(values) & (values <= self.values[pending] + ARMIJO_SLOPE * length[pending] * slope[pending])
            done = pending[accepted]
            new_x[done], new_values[done], new_gradients[done] = trial[accepted], values[accepted], gradients[accepted]
            pending = pending[~accepted]
            if not len(pending):
                break
            length[pending] *= 0.5
        failed = np.zeros(len(self.x), bool)
        failed[pending] = True
        self.failures = np.where(failed, self.failures + 1, np.where(self.failures < 2, 0, self.failures))
        self._remember(new_x - self.x, new_gradients - self.gradients, failed=pending)
        self.x, self.values, self.gradients = new_x, new_values, new_gradients

    def _remember(self, s, y, failed):
        self.newest = (self.newest + 1) % len(self.rho)
        curvature = _dot(s, y)
        good = curvature > 1e-12 * np.maximum(_dot(y, y), 1e-30)
        self.steps_s[self.newest], self.steps_y[self.newest] = s, y
        self.rho[self.newest] = np.where(good, 1.0 / np.where(good, curvature, 1.0), 0.0)
        self.scale = np.where(good, curvature / np.maximum(_dot(y, y), 1e-30), self.scale)
        if len(failed):  # no step along this direction helped: forget the history, start again from the gradient
            self.rho[:, failed] = 0.0
            self.scale[failed] = 0.0
