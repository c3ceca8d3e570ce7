"""WGAN-GP + drift on a linear critic, where every term has a closed form."""

import numpy as np
import pytest
import tensorflow as tf

from deepzine.training.losses import discriminator_loss_terms, generator_loss_terms, gradient_penalty

SHAPE = [3, 4, 4, 1]


class LinearCritic:
    """D(x) = sum(w * x): its input gradient is w for every image, so |grad| = |w|."""

    def __init__(self, weights):
        self.weights = tf.Variable(weights, dtype=tf.float32)

    def __call__(self, images, collections=None, size=None, alpha=None):
        return tf.reduce_sum(images * self.weights, axis=[1, 2, 3])[:, None]


class ConditionedLinearCritic:
    """D(x, c) = sum(w_c * x) for a one-hot c: the gradient penalty must see the slope |w_c| of each image's own c."""

    def __init__(self, weights_per_collection):
        self.weights = tf.Variable(weights_per_collection, dtype=tf.float32)  # [collections, H, W, C]

    def __call__(self, images, collections=None, size=None, alpha=None):
        chosen = tf.einsum('bk,khwc->bhwc', collections, self.weights)
        return tf.reduce_sum(images * chosen, axis=[1, 2, 3])[:, None]


@pytest.fixture
def critic():
    weights = np.zeros(SHAPE[1:], np.float32)
    weights[0, 0, 0], weights[1, 1, 0] = 1.2, 1.6  # |w| = 2
    return LinearCritic(weights)


def test_gradient_penalty_is_squared_distance_of_the_slope_from_one(critic):
    reals, fakes = tf.random.normal(SHAPE), tf.random.normal(SHAPE)
    penalty = gradient_penalty(critic, reals, fakes, None, tf.constant([0.0, 0.5, 1.0]), 4, None)
    np.testing.assert_allclose(penalty.numpy(), [1.0, 1.0, 1.0], rtol=1e-5)


def test_gradient_penalty_has_a_gradient_for_the_critic_weights(critic):
    """The nested-tape pitfall: a penalty whose inner gradient was lost would give None here."""
    reals, fakes = tf.random.normal(SHAPE), tf.random.normal(SHAPE)
    with tf.GradientTape() as tape:
        penalty = tf.reduce_mean(gradient_penalty(critic, reals, fakes, None, tf.constant([0.3, 0.3, 0.3]), 4, None))
    gradient = tape.gradient(penalty, critic.weights)
    assert gradient is not None
    # d/dw (|w| - 1)^2 = 2 (|w| - 1) w / |w| = w when |w| = 2
    np.testing.assert_allclose(gradient.numpy(), critic.weights.numpy(), atol=1e-5)


def test_loss_scaling_of_the_inner_gradient_leaves_the_penalty_unchanged(critic):
    reals, fakes = tf.random.normal(SHAPE), tf.random.normal(SHAPE)
    epsilon = tf.constant([0.1, 0.2, 0.3])
    plain = gradient_penalty(critic, reals, fakes, None, epsilon, 4, None)
    scaled = gradient_penalty(critic, reals, fakes, None, epsilon, 4, None, inner_loss_scale=tf.constant(1024.0))
    np.testing.assert_allclose(scaled.numpy(), plain.numpy(), rtol=1e-5)


def test_discriminator_loss_combines_wasserstein_penalty_and_drift(critic):
    reals, fakes = tf.random.normal(SHAPE), tf.random.normal(SHAPE)
    terms = discriminator_loss_terms(critic, reals, fakes, None, tf.constant([0.5, 0.5, 0.5]), 4, None,
                                     gradient_penalty_weight=10.0, drift_weight=0.001)
    real_scores, fake_scores = critic(reals)[:, 0].numpy(), critic(fakes)[:, 0].numpy()
    np.testing.assert_allclose(terms['wasserstein'].numpy(), real_scores - fake_scores, rtol=1e-5)
    np.testing.assert_allclose(terms['drift'].numpy(), real_scores ** 2, rtol=1e-5)
    np.testing.assert_allclose(terms['loss'].numpy(), fake_scores - real_scores + 10.0 * 1.0 + 0.001 * real_scores ** 2,
                               rtol=1e-5, atol=1e-5)
    assert terms['loss'].shape == (3,)


def test_generator_loss_is_minus_the_critic_score(critic):
    fakes = tf.random.normal(SHAPE)
    np.testing.assert_allclose(generator_loss_terms(critic, fakes, None, 4, None).numpy(), -critic(fakes)[:, 0].numpy(),
                               rtol=1e-6)


def test_a_conditional_penalty_is_taken_of_each_image_s_own_conditioned_score():
    weights = np.zeros([2] + SHAPE[1:], np.float32)
    weights[0, 0, 0, 0] = 2.0   # collection 0: slope 2
    weights[1, 0, 0, 0] = 0.5   # collection 1: slope 0.5
    critic = ConditionedLinearCritic(weights)
    collections = tf.constant([[1.0, 0.0], [0.0, 1.0], [1.0, 0.0]])
    reals, fakes = tf.random.normal(SHAPE), tf.random.normal(SHAPE)
    penalty = gradient_penalty(critic, reals, fakes, collections, tf.constant([0.2, 0.4, 0.6]), 4, None)
    np.testing.assert_allclose(penalty.numpy(), [1.0, 0.25, 1.0], rtol=1e-5)
    np.testing.assert_allclose(generator_loss_terms(critic, fakes, collections, 4, None).numpy(),
                               -critic(fakes, collections)[:, 0].numpy(), rtol=1e-6)
