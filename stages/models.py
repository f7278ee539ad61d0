"""Model building blocks both posts use: dense nets, their optimizers and losses, seeding,
and the training-progress settings. Keras 3 API only, so the same code runs on TensorFlow
here and on JAX on a GPU machine."""

from __future__ import annotations

import sys

import keras
from keras import layers

ACTIVATIONS = ("relu", "sigmoid")
OPTIMIZERS = ("sgd", "adam")
LOSSES = (
    "mse",
    "categorical_crossentropy",
    "categorical_crossentropy_clipped",
    "sparse_categorical_crossentropy",
)
NUM_CLASSES = 10


def seed_everything(seed: int) -> None:
    """Same seed, same numbers: Python, NumPy and backend RNGs, and deterministic kernels."""
    keras.utils.set_random_seed(seed)
    if keras.backend.backend() == "tensorflow":
        import tensorflow as tf

        tf.config.experimental.enable_op_determinism()


def reshuffled(x, y, batch_size: int, seed: int) -> dict:
    """The training data for `model.fit(**reshuffled(x, y, batch_size, seed), ...)`: reshuffled
    before every epoch, as `fit(shuffle=True)` documents and the posts' Keras did, and the same
    orders again for the same seed.

    Keras 3 on TensorFlow does not reshuffle once a seed is set: it draws each epoch's order
    with `tf.random.shuffle` inside a tf.data map, and under a global seed that op restarts from
    the same seed every time the dataset is iterated (tensorflow/tensorflow#35682), so every
    epoch replays one order (tests/test_models.py). There this gives Keras a tf.data pipeline of
    index batches that `Dataset.shuffle` reshuffles from `seed` on each iteration (each epoch),
    gathered and prefetched as Keras's own array pipeline does; on the other backends Keras
    reshuffles the arrays itself, from NumPy's generator, which seed_everything seeds."""
    if keras.backend.backend() != "tensorflow":
        return {"x": x, "y": y, "batch_size": batch_size}
    import tensorflow as tf

    images, labels = tf.constant(x), tf.constant(y)
    batches = tf.data.Dataset.range(len(x)).shuffle(len(x), seed=seed, reshuffle_each_iteration=True).batch(batch_size)
    gathered = batches.map(lambda i: (tf.gather(images, i), tf.gather(labels, i)), num_parallel_calls=tf.data.AUTOTUNE)
    return {"x": gathered.prefetch(tf.data.AUTOTUNE)}


@keras.saving.register_keras_serializable(package="stages")
def clipped_categorical_crossentropy(y_true, y_pred):
    """Cross-entropy computed from clipped probabilities, as Keras 2 (standalone, 2019) did.

    Keras 3 on TensorFlow takes the logits behind a softmax output and computes the loss from
    them, so a saturated softmax still has a gradient. Old Keras normalised the probabilities
    and clipped them to [1e-7, 1 - 1e-7] before the log: a saturated wrong answer then has a
    zero gradient and the net cannot learn its way out. Writing it with keras.ops keeps the
    clip in the graph, so the gradient is the old one on every backend. Registered, so a saved
    model that trained with it loads (after `import stages.models`) with its loss.
    """
    eps = keras.config.epsilon()
    y_pred = y_pred / keras.ops.sum(y_pred, axis=-1, keepdims=True)
    y_pred = keras.ops.clip(y_pred, eps, 1.0 - eps)
    return -keras.ops.sum(y_true * keras.ops.log(y_pred), axis=-1)


def make_loss(name: str):
    if name == "categorical_crossentropy_clipped":
        return clipped_categorical_crossentropy
    return name  # Keras's own: "mse", "categorical_crossentropy", "sparse_categorical_crossentropy"


def make_optimizer(name: str, learning_rate: float) -> keras.optimizers.Optimizer:
    if name == "sgd":
        return keras.optimizers.SGD(learning_rate=learning_rate)
    if name == "adam":
        return keras.optimizers.Adam(learning_rate=learning_rate)
    raise ValueError(f"optimizer {name!r} is not one of {', '.join(OPTIMIZERS)}")


def build_dense(
    input_shape: tuple[int, ...],
    hidden_units: tuple[int, ...],
    activation: str = "relu",
    dropout_rate: float = 0.0,
    l2: float = 0.0,
) -> keras.Model:
    """Input -> [Flatten] -> (Dense(units, activation) [-> Dropout]) per hidden layer -> Dense(10, softmax)."""
    model = keras.Sequential(name="dense_net")
    model.add(keras.Input(shape=input_shape))
    if len(input_shape) > 1:
        model.add(layers.Flatten())
    regularizer = keras.regularizers.L2(l2) if l2 > 0 else None
    for units in hidden_units:
        model.add(layers.Dense(units, activation=activation, kernel_regularizer=regularizer))
        if dropout_rate > 0:
            model.add(layers.Dropout(dropout_rate))
    model.add(layers.Dense(NUM_CLASSES, activation="softmax"))
    return model


def fit_verbosity() -> int:
    """A progress bar on a terminal, one line per epoch in a log."""
    return 1 if sys.stdout.isatty() else 2

