"""Fashion-MNIST units and tables: the post's fold slicing and overfitting rule pinned on hand-made
inputs, curve averaging, and the models' training on tiny data where the answer is known."""

import numpy as np
import pytest

from lib.common.core import ConfigError, build_config
from lib.common.paths import fashion_cv_run
from lib.results.figures import plot_curves, plot_warning_epochs
from lib.results.render import render_sections
from lib.results.runs import read_curves, summarize_cv, warning_epochs
from lib.results.stats import mean_std, seed_summary
from lib.train.configs import CrossValidation, DenseVariant, OverfittingRule, RunSettings
from lib.train.keras_train import LiveLogger, build_cnn, fold_indices, train_fold
from lib.train.overfitting import mean_curves, overfitting_warning, warning_summary
from stages.fashion_samples import first_of_each_class

RULE = OverfittingRule(patience=10, min_decrease=0.02)


def post_k_fold_split(data, k, i):
    """The post's k_fold_val slicing, verbatim, as the reference."""
    len_per_fold = len(data) // k
    val_data = data[i * len_per_fold : (i + 1) * len_per_fold]
    train_data = np.concatenate((data[: i * len_per_fold], data[(i + 1) * len_per_fold :]))
    return train_data, val_data


@pytest.mark.parametrize("n, k", [(60000, 5), (103, 5), (10, 2)])
def test_folds_match_the_post_and_partition_the_data(n, k):
    data = np.arange(n)
    vals = []
    for i in range(k):
        train, val = fold_indices(n, k, i)
        ref_train, ref_val = post_k_fold_split(data, k, i)
        np.testing.assert_array_equal(data[train], ref_train)
        np.testing.assert_array_equal(data[val], ref_val)
        assert len(val) == n // k and len(train) == n - n // k
        assert not set(train) & set(val)
        assert np.all(np.diff(val) == 1) and np.all(np.diff(train) > 0)  # contiguous, in order
        vals.append(val)
    assert np.array_equal(np.sort(np.concatenate(vals)), np.arange(k * (n // k)))  # disjoint, cover
    with pytest.raises(ValueError):
        fold_indices(n, k, k)


def post_warning(val_loss, patience=10):
    """The post's visualize() loop, verbatim, as the reference."""
    for i in range(len(val_loss) - patience):
        flag = True
        for j in range(1, patience + 1):
            if val_loss[i] * 0.98 > val_loss[i + j]:
                flag = False
                break
        if flag:
            return i
    return None


def test_warning_on_hand_made_curves():
    # Falls 5% a step to epoch 10 (index 9), then flat: index 9 is the first with no 2% drop ahead.
    falling_then_flat = [1.0 * 0.95**i for i in range(10)] + [0.95**9] * 15
    assert overfitting_warning(falling_then_flat, RULE) == 9
    # Rises from the minimum at index 4: a warning there, at epoch 5.
    u_shape = [1.0, 0.8, 0.6, 0.5, 0.45, 0.46, 0.48, 0.5, 0.55, 0.6, 0.62, 0.66, 0.7, 0.75, 0.8, 0.85]
    assert overfitting_warning(u_shape, RULE) == 4
    # A drop of exactly 2% does not count as improvement (strictly below 0.98 x).
    assert overfitting_warning([1.0] + [0.98] * 10, RULE) == 0
    # Always improving by more than 2%: no epoch qualifies.
    assert overfitting_warning([0.97**i for i in range(40)], RULE) is None
    # Too short to judge: an epoch needs `patience` successors.
    assert overfitting_warning([1.0] * 10, RULE) is None


def test_warning_agrees_with_the_posts_loop_on_random_curves():
    rng = np.random.default_rng(0)
    for _ in range(300):
        curve = np.cumsum(rng.normal(-0.01, 0.03, size=int(rng.integers(5, 45)))) + 1.0
        assert overfitting_warning(curve, RULE) == post_warning(list(curve))


def test_mean_curves_over_folds_of_different_lengths():
    a = {
        "loss": [3.0, 2.0, 1.0],
        "val_loss": [3.0, 2.0, 1.0],
        "accuracy": [0.1, 0.2, 0.3],
        "val_accuracy": [0.1, 0.2, 0.3],
    }
    b = {"loss": [1.0, 0.0], "val_loss": [1.0, 0.0], "accuracy": [0.3, 0.4], "val_accuracy": [0.3, 0.4]}
    curves = mean_curves([a, b])
    np.testing.assert_allclose(curves["loss"], [2.0, 1.0, 1.0])  # epoch 3: only fold a reached it
    np.testing.assert_allclose(curves["val_accuracy"], [0.2, 0.3, 0.3])


def test_mean_std_over_seeds():
    assert mean_std([15, 17]) == {"mean": 16.0, "std": pytest.approx(1.414214, abs=1e-6), "seeds": 2}
    assert mean_std([None, 12]) == {"mean": 12.0, "std": 0.0, "seeds": 1}
    assert mean_std([None]) == {"mean": None, "std": None, "seeds": 0}


def clusters(n, seed):
    rng = np.random.default_rng(seed)
    centres = rng.normal(size=(10, 28, 28)).astype("float32") * 3
    labels = np.arange(n) % 10
    return centres[labels] + rng.normal(size=(n, 28, 28)).astype("float32") * 0.3, labels.astype("int64")


def test_dense_fold_learns_and_early_stopping_reports_its_epochs():
    x, y = clusters(300, 1)
    train, val = fold_indices(len(x), 5, 2)
    settings = RunSettings(epochs=20, batch_size=32)
    curves, metrics = train_fold(DenseVariant(hidden_units=(16,)), settings, 0, x[train], y[train], x[val], y[val])
    assert len(curves["val_loss"]) == 20 and curves["val_accuracy"][-1] > 0.95 and metrics == {"epochs_run": 20}
    # Random labels: nothing generalises, val_loss soon rises and the run must stop early.
    y_random = np.random.default_rng(2).integers(0, 10, size=len(y))
    stopper = DenseVariant(hidden_units=(64,), early_stopping_patience=2)
    long = RunSettings(epochs=200, batch_size=32, learning_rate=0.01)
    curves, metrics = train_fold(stopper, long, 0, x[train], y_random[train], x[val], y_random[val])
    assert metrics["epochs_run"] < 200 and metrics["epochs_run"] == len(curves["loss"])
    assert metrics["best_epoch"] == int(np.argmin(curves["val_loss"])) + 1
    assert metrics["val_loss"] == pytest.approx(min(curves["val_loss"]), rel=1e-4)  # best weights restored


def test_cnn_has_the_posts_layers_and_parameter_count():
    model = build_cnn()
    assert model.count_params() == 93322  # the post's model.summary()
    assert [type(layer).__name__ for layer in model.layers] == [
        "Conv2D",
        "MaxPooling2D",
        "Conv2D",
        "MaxPooling2D",
        "Conv2D",
        "Flatten",
        "Dropout",
        "Dense",
        "Dense",
    ]


def test_bad_fashion_settings_name_the_key():
    cases = [
        (CrossValidation, {"k": 1}, "k"),
        (DenseVariant, {"hidden_units": [64], "l2": -0.1}, "l2"),
        (DenseVariant, {"hidden_units": [64], "dropout_rate": 1.5}, "dropout_rate"),
        (RunSettings, {"epochs": 0, "batch_size": 128}, "epochs"),
        (OverfittingRule, {"patience": 0}, "patience"),
    ]
    for cls, section, key in cases:
        with pytest.raises(ConfigError, match=rf"fashion\.x\.{key}"):
            build_config(cls, section, "fashion.x")
    # A unit trains every fold: the fold list of the per-fold stages is gone, and refused by name.
    with pytest.raises(ConfigError, match=r"fashion\.x: unknown key\(s\) folds; allowed: k"):
        build_config(CrossValidation, {"k": 5, "folds": [5]}, "fashion.x")


def test_first_image_of_each_class():
    labels = np.array([9, 0, 0, 3, 0, 2, 7, 2, 5, 5, 0, 9, 5, 5, 7, 9, 1, 0, 6, 4, 3, 1, 4, 8])
    assert first_of_each_class(labels) == [1, 16, 5, 3, 19, 8, 18, 6, 23, 0]


def test_figure_is_a_real_png(tmp_path):
    curves = {
        "loss": np.linspace(1, 0.2, 20),
        "val_loss": np.linspace(1, 0.4, 20),
        "accuracy": np.linspace(0.5, 0.95, 20),
        "val_accuracy": np.linspace(0.5, 0.9, 20),
    }
    plot_curves(tmp_path / "f.png", "test", curves, 12, "validation")
    data = (tmp_path / "f.png").read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) > 10_000
    assert [p.name for p in tmp_path.iterdir()] == ["f.png"]


U_SHAPE = [1.0, 0.8, 0.6, 0.5, 0.45, 0.46, 0.48, 0.5, 0.55, 0.6, 0.62, 0.66, 0.7, 0.75, 0.8, 0.85]  # warns at epoch 5


def write_fold(runs, variant, seed, fold, val_loss, val_accuracy):
    """A fold folder as a unit records it: the curves through the units' dvclive logger, the metrics."""
    import json

    from dvclive import Live

    folder = fashion_cv_run(variant, seed, fold, runs)
    folder.mkdir(parents=True)
    n = len(val_loss)
    history = {"loss": [0.5] * n, "accuracy": [0.8] * n, "val_loss": list(val_loss), "val_accuracy": list(val_accuracy)}
    with Live(dir=str(folder / "live"), dvcyaml=False, save_dvc_exp=False, report=None) as live:
        logger = LiveLogger(live)
        for epoch in range(n):
            logger.on_epoch_end(epoch, {name: values[epoch] for name, values in history.items()})
    assert read_curves(folder) == history  # what the tables read is what the units logged, value for value
    (folder / "metrics.json").write_text(json.dumps({"epochs_run": n}))


def test_cross_validation_summary_and_rendered_rows_on_hand_made_folds(tmp_path):
    """Two seeds of two folds whose fold-mean val_loss warns at epoch 5 (seed 0) and 6 (seed 1),
    both at val_loss 0.45; the summary, the warning and the rendered table row are pinned."""
    n = len(U_SHAPE)
    for seed, curve in ((0, U_SHAPE), (1, [1.1] + U_SHAPE[:-1])):
        warn = curve.index(0.45)
        for fold, (shift, acc) in enumerate(((0.125, 0.80), (-0.125, 0.90))):
            accuracy = [0.5] * n
            accuracy[warn] = acc + 0.02 * seed  # fold mean at the warning: 0.85 (seed 0), 0.87 (seed 1)
            write_fold(tmp_path, "dense64", seed, fold, [v + shift for v in curve], accuracy)
    summary, curves = summarize_cv(["dense64"], [0, 1], 2, RULE, tmp_path)
    entry = summary["dense64"]
    assert entry["warned_seeds"] == 2
    assert entry["epoch"] == {"mean": 5.5, "std": pytest.approx(0.707107, abs=1e-6), "seeds": 2, "values": [5, 6]}
    assert entry["val_loss"] == {"mean": 0.45, "std": 0.0, "seeds": 2, "values": [0.45, 0.45]}
    assert entry["val_accuracy"]["mean"] == pytest.approx(0.86) and entry["val_accuracy"]["seeds"] == 2
    assert (
        warning_summary(
            mean_curves([{"loss": U_SHAPE, "accuracy": U_SHAPE, "val_loss": U_SHAPE, "val_accuracy": U_SHAPE}]), RULE
        )["epoch"]
        == 5
    )
    np.testing.assert_allclose(
        curves["dense64"]["val_loss"][:5], [1.05, 0.9, 0.7, 0.55, 0.475]
    )  # seed mean of the fold means

    metrics = {
        "cross_validation": summary,
        "final": {"test_loss": seed_summary([0.33, 0.35]), "test_accuracy": seed_summary([0.88, 0.89])},
        "cnn": {
            "warning": {
                "epoch": seed_summary([12, 14]),
                "val_loss": seed_summary([0.24, 0.25]),
                "val_accuracy": seed_summary([0.91, 0.92]),
            },
            "final_val_accuracy": mean_std([0.915, 0.917]),
        },
    }
    reference = {
        "cross_validation": {"dense64": {"epoch": 15, "val_loss": 0.329, "val_accuracy": 0.883}},
        "final": {"test_loss": 0.3279, "test_accuracy": 0.8864},
        "cnn": {"warning": {"epoch": 18, "val_loss": 0.227, "val_accuracy": 0.921}},
    }
    tolerance = {"accuracy": {"absolute": 0.02}, "loss": {"absolute": 0.03}, "epoch": {"absolute": 3}}
    settings = {
        "k": 2,
        "epochs": 16,
        "patience": 10,
        "min_decrease": 0.02,
        "final": "dense(256), dropout 0.4, 20 epochs",
        "cnn_epochs": 30,
    }
    lines, verdicts = render_sections(metrics, reference, tolerance, settings, 2, "figures/")
    # n = 2: mean +- 12.7062 * s * sqrt(1.5) over the seeds alone. The epoch: 5.5 +- 11.0 (shown from 0), the
    # post's 15 inside it but 9.5 from our mean (beyond the 3-epoch tolerance); val_loss: both seeds 0.45, an
    # interval of one point that the post's 0.329 misses (flagged: the seeds are equal); val_accuracy: 0.86 +-
    # 0.22 (shown up to 1), 0.023 from the post's. Rank 3 of 3 (or 1 of 3): p = 2 min(r, n + 2 - r)/(n + 1) = 2/3.
    assert (
        "| `dense64` | 15 | 5.5 ± 0.7 (2) | 0.0 to 16.5 | 3/3, p 0.67 | consistent | beyond tol. "
        "| 0.329 | 0.450 ± 0.000 (2) | 0.450 to 0.450 | 1/3, p 0.67 | outside (2 of 2 seeds equal) | beyond tol. "
        "| 0.883 | 0.860 ± 0.014 (2) | 0.640 to 1.000 | 3/3, p 0.67 | consistent | beyond tol. |"
    ) in lines
    assert "## Dense nets, 2-fold cross-validation, 16 epochs" in lines
    assert "## The chosen model (dense(256), dropout 0.4, 20 epochs) on the test set" in lines
    assert (
        "| test_accuracy | 0.8864 | 0.8850 ± 0.0071 (2) | 0.7750 to 0.9950 | 2/3, p 1.00 | consistent | within tol. |"
        in lines
    )
    assert (
        "| epoch | 18 | 13.0 ± 1.4 (2) | 0.0 to 35.0 | 3/3, p 0.67 | consistent | beyond tol. |" in lines
        and "![cnn](figures/cnn.png)" in lines
    )
    assert len(verdicts) == 3 + 2 + 3 and [v["statistical"] for v in verdicts].count("outside") == 1
    assert (
        "Of the post's 8 figures, 7 lie inside our 95% prediction interval (statistical: consistent) and 4 within "
        "the tolerance of our mean (practical)."
    ) in lines


def test_warning_epochs_per_seed_beside_the_posts(tmp_path):
    reference = {"cross_validation": {"dense64": {"epoch": 15}}, "cnn": {"warning": {"epoch": 18}}}
    frame = warning_epochs(
        {"dense64": [(0, 13), (1, None), (2, 14)], "ours": [(0, 9)], "cnn": [(0, 12), (1, 12)]}, reference
    )
    rows = [tuple(r) for r in frame.astype(object).where(frame.notna(), None).itertuples(index=False)]
    assert rows == [
        ("dense64", "our seed", 0, 13),
        ("dense64", "our seed", 2, 14),
        ("dense64", "post", None, 15),  # seed 1 never warned
        ("ours", "our seed", 0, 9),
        ("cnn", "our seed", 0, 12),
        ("cnn", "our seed", 1, 12),
        ("cnn", "post", None, 18),
    ]
    plot_warning_epochs(tmp_path / "w.png", frame)
    assert (tmp_path / "w.png").read_bytes()[:4] == b"\x89PNG"
