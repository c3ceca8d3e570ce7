import numpy as np

from deepzine.sampling.lbfgs import BatchLbfgs


def quadratic_rows(scales, centres):
    """Row i minimises sum_j scales[i, j] * (x_j - centres[i, j])^2: independent problems of different conditioning."""
    def evaluate(x, rows):
        difference = x - centres[rows]
        return np.sum(scales[rows] * difference ** 2, axis=1), 2 * scales[rows] * difference
    return evaluate


def test_every_row_reaches_its_own_minimum_however_badly_scaled():
    random_generator = np.random.default_rng(0)
    scales = np.stack([np.full(6, 1.0), np.logspace(0, 4, 6), np.logspace(-2, 2, 6)])
    centres = random_generator.standard_normal((3, 6))
    optimizer = BatchLbfgs(quadratic_rows(scales, centres), np.zeros((3, 6)))
    for _ in range(60):
        optimizer.step()
    np.testing.assert_allclose(optimizer.x, centres, atol=1e-4)


def test_a_row_moves_the_same_alone_or_in_a_batch():
    """Each row's line search and curvature history are its own: a projection does not depend on its batch mates."""
    random_generator = np.random.default_rng(1)
    scales, centres = np.abs(random_generator.standard_normal((4, 5))) + 0.1, random_generator.standard_normal((4, 5))
    start = random_generator.standard_normal((4, 5))
    together = BatchLbfgs(quadratic_rows(scales, centres), start)
    alone = BatchLbfgs(quadratic_rows(scales[2:3], centres[2:3]), start[2:3])
    for _ in range(5):
        together.step()
        alone.step()
    np.testing.assert_allclose(together.x[2], alone.x[0], rtol=1e-6)


def test_rows_that_cannot_improve_stop_being_evaluated():
    """Row 0 sits at a stationary point; row 1's gradient points uphill, so no step along it lowers the value."""
    calls = []

    def stuck(x, rows):
        calls.append(len(rows))
        gradients = -2 * x
        gradients[rows == 0] = 0
        return np.sum(x ** 2, axis=1), gradients
    optimizer = BatchLbfgs(stuck, np.ones((2, 3)))
    for _ in range(5):
        optimizer.step()
    assert optimizer.converged.all()
    np.testing.assert_array_equal(optimizer.x, np.ones((2, 3)))
    calls_before = len(calls)
    optimizer.step()
    assert len(calls) == calls_before  # nothing left to evaluate
