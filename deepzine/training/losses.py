"""WGAN-GP losses with the drift term, per image (Gulrajani et al. 2017; Karras et al. 2018, appendix A.1).

Every function returns per-image values [B]; the caller averages them over the
global batch (`tf.nn.compute_average_loss`), which is what makes the loss the
same on one device and on several. `collections` [B, collection_count] is each
image's collection for a conditional critic (None for an unconditional one);
real, generated and interpolated images of one index share it, so the gradient
penalty is taken of the conditioned score, as StyleGAN2-ADA does.
"""

import tensorflow as tf


def _scores(discriminator, images, collections, size, alpha):
    return tf.reshape(discriminator(images, collections, size=size, alpha=alpha), [-1])


def gradient_penalty(discriminator, reals, fakes, collections, epsilon, size, alpha, inner_loss_scale=None):
    """(|grad_x D(x)| - 1)^2 at x on the line between each real and fake image, per image.

    The inner tape's target is the unreduced score vector (its gradient is the
    gradient of the sum): a `tf.reduce_sum` written after the inner `with`
    block is not recorded by it and the gradient comes back None.
    Under float16 loss scaling the inner gradient can underflow, so it is taken
    of the scaled scores and divided back (`inner_loss_scale`, None: no scaling).
    """
    epsilon = tf.reshape(epsilon, [-1, 1, 1, 1])
    interpolates = reals + epsilon * (fakes - reals)
    with tf.GradientTape() as inner_tape:
        inner_tape.watch(interpolates)
        scores = _scores(discriminator, interpolates, collections, size, alpha)
        if inner_loss_scale is not None:
            scores = scores * tf.cast(inner_loss_scale, scores.dtype)
    gradients = inner_tape.gradient(scores, interpolates)
    if inner_loss_scale is not None:
        gradients = gradients / tf.cast(inner_loss_scale, gradients.dtype)
    # The tiny constant keeps sqrt's derivative finite where the gradient is exactly zero.
    slopes = tf.sqrt(tf.reduce_sum(tf.square(gradients), axis=[1, 2, 3]) + 1e-12)
    return tf.square(slopes - 1.0)


def discriminator_loss_terms(discriminator, reals, fakes, collections, epsilon, size, alpha, gradient_penalty_weight,
                             drift_weight, inner_loss_scale=None):
    """Per-image critic loss D(fake) - D(real) + weight * GP + drift * D(real)^2, and its parts for logging.

    Returns a dict of [B] tensors: `loss`, `wasserstein` (D(real) - D(fake),
    the critic's distance estimate), `gradient_penalty` and `drift` (D(real)^2).
    """
    real_scores = _scores(discriminator, reals, collections, size, alpha)
    fake_scores = _scores(discriminator, fakes, collections, size, alpha)
    penalty = gradient_penalty(discriminator, reals, fakes, collections, epsilon, size, alpha, inner_loss_scale)
    drift = tf.square(real_scores)
    loss = fake_scores - real_scores + gradient_penalty_weight * penalty + drift_weight * drift
    return {'loss': loss, 'wasserstein': real_scores - fake_scores, 'gradient_penalty': penalty, 'drift': drift}


def generator_loss_terms(discriminator, fakes, collections, size, alpha):
    """Per-image generator loss -D(G(z, c), c)."""
    return -_scores(discriminator, fakes, collections, size, alpha)
