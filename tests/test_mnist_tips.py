"""MNIST tips unit: its config checks, the Keras-2 loss, and training on tiny data where the
answer is known (a separable problem is learned; the same seed gives the same numbers)."""

import json

import keras
import numpy as np
import pytest

from lib.common.core import ConfigError, DataError, build_config
from lib.results.render import render_table
from lib.results.runs import collect_tips
from lib.results.stats import mean_std
from lib.train.configs import TipsVariant
from lib.train.keras_train import build_dense, clipped_categorical_crossentropy, train_tips

BASE = {
    "hidden_units": [16],
    "activation": "relu",
    "loss": "categorical_crossentropy",
    "optimizer": "adam",
    "learning_rate": 0.01,
    "batch_size": 20,
    "epochs": 15,
}


def train_and_evaluate(variant, seed, arrays) -> dict:
    """The unit's core, its curves as `history` beside its final metrics."""
    curves, metrics = train_tips(variant, seed, arrays)
    return {**metrics, "history": curves}


def variant(**overrides):
    return build_config(TipsVariant, {**BASE, **overrides}, "mnist_tips.variants.test")


def separable(n=200, seed=0):
    """Ten well-separated clusters in 784 dimensions: any working classifier gets ~100%."""
    rng = np.random.default_rng(seed)
    centres = rng.normal(size=(10, 784)).astype("float32") * 3
    labels = np.arange(n) % 10
    x = centres[labels] + rng.normal(size=(n, 784)).astype("float32") * 0.3
    y = np.eye(10, dtype="float32")[labels]
    return x, y


@pytest.fixture(scope="module")
def arrays():
    x_train, y_train = separable(200, 0)
    x_test, y_test = x_train[:50] + 0.01, y_train[:50]
    return {"x_train": x_train, "y_train": y_train, "x_test": x_test, "y_test": y_test}


def test_learns_a_separable_problem_and_records_history(arrays):
    result = train_and_evaluate(variant(), 0, arrays)
    assert result["train_accuracy"] > 0.95 and result["test_accuracy"] > 0.95
    assert len(result["history"]["loss"]) == 15 and "val_accuracy" in result["history"]
    assert result["history"]["loss"][-1] < result["history"]["loss"][0]


def test_same_seed_same_numbers_other_seed_differs(arrays):
    short = variant(epochs=2, learning_rate=0.001)
    first, again = train_and_evaluate(short, 3, arrays), train_and_evaluate(short, 3, arrays)
    other = train_and_evaluate(short, 4, arrays)
    assert first == again
    assert other["history"]["loss"] != first["history"]["loss"]


def test_speed_settings_keep_the_posts_training(arrays):
    """Steps per execution and the one-batch test evaluation change speed, not the run: the
    post's plain compile/fit with the same seed and the same data order (reshuffled each epoch)
    gives the same curves (up to float rounding)."""
    from lib.train.keras_train import build_dense, make_loss, make_optimizer, reshuffled, seed_everything

    short = variant(epochs=4, batch_size=7, learning_rate=0.003)  # 29 steps an epoch, the last one short
    ours = train_and_evaluate(short, 5, arrays)
    seed_everything(5)
    model = build_dense((784,), short.hidden_units, short.activation, short.dropout_rate)
    model.compile(
        loss=make_loss(short.loss), optimizer=make_optimizer(short.optimizer, short.learning_rate), metrics=["accuracy"]
    )
    plain = model.fit(
        **reshuffled(arrays["x_train"], arrays["y_train"], short.batch_size, 5),
        epochs=short.epochs,
        validation_data=(arrays["x_test"], arrays["y_test"]),
        verbose=0,
    )
    keras.backend.clear_session()
    assert ours["history"].keys() == plain.history.keys()
    for name, values in plain.history.items():
        np.testing.assert_allclose(ours["history"][name], values, rtol=1e-4, atol=1e-6, err_msg=name)
    assert (
        ours["history"]["loss"][0] > 1.5 * ours["history"]["loss"][-1]
    )  # it did learn: the comparison is not of two flat lines


@pytest.mark.parametrize(
    "overrides, key",
    [
        ({"activation": "swish"}, "activation"),
        ({"loss": "hinge"}, "loss"),
        ({"optimizer": "adm"}, "optimizer"),
        ({"dropout_rate": 1.0}, "dropout_rate"),
        ({"epochs": 0}, "epochs"),
        ({"batch_size": 0}, "batch_size"),
        ({"hidden_units": []}, "hidden_units"),
        ({"learning_rate": "fast"}, "learning_rate"),
    ],
)
def test_bad_variant_settings_name_the_key(overrides, key):
    with pytest.raises(ConfigError, match=rf"mnist_tips\.variants\.test\.{key}"):
        variant(**overrides)


def test_dense_model_matches_the_posts_layout():
    model = build_dense((784,), (689, 689, 689), "sigmoid", dropout_rate=0.7)
    kinds = [type(layer).__name__ for layer in model.layers]
    assert kinds == ["Dense", "Dropout"] * 3 + ["Dense"]
    assert model.count_params() == 784 * 689 + 689 + 2 * (689 * 689 + 689) + 689 * 10 + 10


def test_keras2_loss_equals_crossentropy_where_nothing_is_clipped():
    y_true = np.eye(3, dtype="float32")
    y_pred = np.array([[0.7, 0.2, 0.1], [0.1, 0.8, 0.1], [0.3, 0.3, 0.4]], dtype="float32")
    expected = -np.log([0.7, 0.8, 0.4])
    np.testing.assert_allclose(
        keras.ops.convert_to_numpy(clipped_categorical_crossentropy(y_true, y_pred)), expected, rtol=1e-5
    )


def test_keras2_loss_has_no_gradient_through_a_saturated_softmax():
    """The cause of row 9: with the old loss a saturated wrong answer cannot be corrected.
    Keras 3 on TensorFlow finds the logits behind a Keras softmax and keeps a gradient."""
    import tensorflow as tf

    logits = tf.Variable([[60.0, 0.0, -60.0]])  # softmax saturates on the wrong class
    y_true = tf.constant([[0.0, 0.0, 1.0]])
    with tf.GradientTape(persistent=True) as tape:
        probs = keras.activations.softmax(logits)  # as a Dense(activation="softmax") output
        old = clipped_categorical_crossentropy(y_true, probs)
        new = keras.losses.categorical_crossentropy(y_true, probs)
    assert float(tf.reduce_max(tf.abs(tape.gradient(old, logits)))) == 0.0
    assert float(tf.reduce_max(tf.abs(tape.gradient(new, logits)))) > 0.5


def test_summary_and_table(tmp_path):
    for seed, (train, test) in enumerate([(0.90, 0.80), (0.92, 0.84)]):
        run = tmp_path / "mse" / f"seed{seed}"
        run.mkdir(parents=True)
        (run / "metrics.json").write_text(json.dumps({"train_accuracy": train, "test_accuracy": test}))
    summary = collect_tips(["mse"], [0, 1], tmp_path)
    assert summary["mse"]["test_accuracy"] == {
        "mean": 0.82,
        "std": pytest.approx(0.028284, abs=1e-6),
        "seeds": 2,
        "values": [0.8, 0.84],
    }
    tolerance = {"accuracy": {"absolute": 0.02}}
    table = render_table(
        summary, {"mse": {"row": 1, "train_accuracy": 0.5, "test_accuracy": 0.9}}, tolerance, [0, 1], "after 2 epochs"
    )
    # n = 2: mean +- 12.7062 * s * sqrt(1.5). Train: 0.91 +- 0.2201, the post's 0.5 below both
    # seeds and the interval; test: 0.82 +- 0.4402 (shown within 0-1), the post's 0.9 above both.
    # Both 0.41 and 0.08 from our means: beyond the 0.02 tolerance. Rank 1 (3) of 3: p = 2/3.
    assert (
        "| 1 | `mse` | 0.5000 | 0.9100 ± 0.0141 (2) | 0.6899 to 1.0000 | 1/3, p 0.67 | outside | beyond tol. "
        "| 0.9000 | 0.8200 ± 0.0283 (2) | 0.3798 to 1.0000 | 3/3, p 0.67 | consistent | beyond tol. |"
    ) in table
    assert (
        "Of the post's 2 figures, 1 lie inside our 95% prediction interval (statistical: consistent) and 0 within "
        "the tolerance of our mean (practical)."
    ) in table
    assert "Accuracy from `evaluate` after 2 epochs, mean ± sample std over 2 seed(s) (0, 1)" in table
    assert mean_std([0.5])["std"] == 0.0
    with pytest.raises(DataError, match="seed2/metrics.json: missing"):
        collect_tips(["mse"], [0, 1, 2], tmp_path)


def test_other_backends_get_a_column_each_with_what_trained_them():
    """Each tools.run_variants file is a lettered column, named by its Keras, backend and devices and by how it
    computes the cross-entropy; a row a file lacks shows "-"; a smaller profile shows none of them."""
    summary = {
        v: {
            m: {"mean": 0.5, "std": 0.01, "seeds": 2, "values": [0.49, 0.51]}
            for m in ("train_accuracy", "test_accuracy")
        }
        for v in ("mse", "adam")
    }
    reference = {
        "mse": {"row": 1, "train_accuracy": 0.5, "test_accuracy": 0.5},
        "adam": {"row": 6, "train_accuracy": 0.5, "test_accuracy": 0.5},
    }
    jax = (
        {"mse": {m: {"mean": 0.14, "std": 0.05, "seeds": 3} for m in ("train_accuracy", "test_accuracy")}},
        {"backend": "jax", "keras": "3.15.1", "devices": ["cuda:0"], "machine": "x86_64", "file": "j.json"},
    )
    keras2 = (
        {
            v: {m: {"mean": 0.9401, "std": 0.0123, "seeds": 10} for m in ("train_accuracy", "test_accuracy")}
            for v in ("mse", "adam")
        },
        {
            "backend": "tf_keras",
            "versions": {"keras": "2.21.0", "tensorflow": "2.21.0"},
            "devices": [],
            "machine": "x86_64",
            "file": "k.json",
            "params": {"adam": {"epochs": 20}},
            "code": {"commit": "1b0c384ffb77aa", "md5": {"a.py": "0"}},
        },
    )
    tolerance = {"accuracy": {"absolute": 0.02}}
    table = render_table(
        summary, reference, tolerance, [0, 1], "after 2 epochs", [jax, keras2], {"adam": {"epochs": 20}}
    )
    assert "- **A**: Keras 3.15.1 on JAX, cuda:0 (`j.json`), cross-entropy from the probabilities clipped" in table
    assert (
        "- **B**: Keras 2.21.0 on TensorFlow 2.21.0, x86_64 (`k.json`), cross-entropy from the logits behind "
        "the softmax. Made at commit `1b0c384ffb77`; its params are identical to those"
    ) in table
    assert "| row | variant | post train | this pipeline | A | B | post test | this pipeline | A | B |" in table
    assert (
        "| 6 | `adam` | 0.5000 | 0.5000 ± 0.0100 | - | 0.9401 ± 0.0123 (10) | 0.5000 | 0.5000 ± 0.0100 | - "
        "| 0.9401 ± 0.0123 (10) |"
    ) in table
    assert "| 1 | `mse` | 0.5000 | 0.5000 ± 0.0100 | 0.1400 ± 0.0500 (3) | 0.9401" in table
    unjudged = render_table(summary, reference, None, [0, 1], "after 2 epochs", [jax, keras2])
    assert "other backends" not in unjudged
