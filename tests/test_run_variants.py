"""tools/run_variants.py on Fashion-MNIST: the two definitions of the validation loss (on
hand-made logits, and on real training where each backend's Keras must agree with one of them),
the fold digests that tie the tool's training to the DVC units', and the table's summary of a
second backend's file."""

import hashlib
import json
import math
from pathlib import Path

import numpy as np
import pytest

from lib.results.other_backend import gap_pattern, other_backend
from lib.results.render import render_other_backend
from lib.results.runs import read_curves
from lib.train.configs import OverfittingRule
from tests.conftest import run
from tools.run_variants import val_loss_definitions

ROOT = Path(__file__).resolve().parents[1]
CLIP_FLOOR = -math.log(np.float32(1e-7))  # the clipped loss of a sure wrong answer: 16.118


def test_an_uncertain_answer_has_the_same_loss_both_ways():
    found = val_loss_definitions(np.array([[0.0, 0.0]]), np.array([0]))
    assert found["logits"] == pytest.approx(math.log(2), rel=1e-12)
    assert found["clipped"] == pytest.approx(math.log(2), rel=1e-6)


def test_a_sure_wrong_answer_is_capped_only_when_clipped():
    found = val_loss_definitions(np.array([[0.0, 40.0]]), np.array([0]))
    assert found["logits"] == pytest.approx(40.0, rel=1e-12)
    assert found["clipped"] == pytest.approx(CLIP_FLOOR, rel=1e-6)


def test_a_sure_right_answer_keeps_a_floor_only_when_clipped():
    found = val_loss_definitions(np.array([[40.0, 0.0]]), np.array([0]))
    assert found["logits"] == pytest.approx(0.0, abs=1e-15)
    assert found["clipped"] == pytest.approx(-math.log(np.float32(1) - np.float32(1e-7)), rel=1e-3)  # 1.19e-7


def test_the_penalty_is_added_to_both_and_means_are_per_image():
    logits, labels = np.array([[0.0, 0.0], [0.0, 40.0]]), np.array([0, 0])
    found = val_loss_definitions(logits, labels, regularization=0.5)
    assert found["logits"] == pytest.approx((math.log(2) + 40.0) / 2 + 0.5, rel=1e-9)
    assert found["clipped"] == pytest.approx((math.log(2) + CLIP_FLOOR) / 2 + 0.5, rel=1e-6)


PARAMS = {
    "hidden_units": [64],
    "dropout_rate": 0.0,
    "l2": 0.0,
    "early_stopping_patience": None,
    "epochs": 6,
    "batch_size": 128,
    "optimizer": "adam",
    "learning_rate": 0.001,
    "k": 5,
}


def backend_file(path, runs: list[dict], params: dict) -> None:
    path.write_text(
        json.dumps(
            {
                "post": "fashion",
                "backend": "jax",
                "devices": ["cpu:0"],
                "machine": "x86_64",
                "versions": {"keras": "3.15.1", "jax": "0.10.2"},
                "code": {"commit": "0" * 40, "md5": {}},
                "params": params,
                "runs": runs,
            }
        )
    )


def a_run(variant: str, seed: int, logits: list, clipped: list) -> dict:
    return {
        "variant": variant,
        "seed": seed,
        "seconds": 1.0,
        "history_sha256": [],
        "curves": {
            "val_loss": clipped,
            "val_loss_logits": logits,
            "val_loss_clipped": clipped,
            "val_accuracy": [0.5, 0.6, 0.7, 0.8, 0.81, 0.82],
            "loss": [0] * 6,
            "accuracy": [0] * 6,
        },
    }


def test_the_warning_is_taken_under_each_definition(tmp_path):
    """Patience 2, 2%: the logits curve stops improving after epoch 3, the clipped one after 4;
    a variant trained with other params is left out and named."""
    logits = [1.0, 0.9, 0.8, 0.79, 0.79, 0.79]
    clipped = [1.0, 0.9, 0.8, 0.7, 0.69, 0.69]
    backend_file(
        tmp_path / "b.json",
        [
            a_run("dense64", 0, logits, clipped),
            a_run("dense64", 1, logits, logits),
            a_run("dense64_l2", 0, logits, clipped),
        ],
        {"dense64": PARAMS, "dense64_l2": {**PARAMS, "l2": 0.5}},
    )
    found = other_backend(
        tmp_path / "b.json",
        OverfittingRule(patience=2, min_decrease=0.02),
        {"dense64": PARAMS, "dense64_l2": {**PARAMS, "l2": 0.001}},
    )
    assert found["other_params"] == ["dense64_l2"] and list(found["variants"]) == ["dense64"]
    entry = found["variants"]["dense64"]
    assert entry["logits"]["epoch"]["values"] == [3, 3]
    assert entry["clipped"]["epoch"]["values"] == [4, 3]
    assert entry["keras"]["epoch"]["values"] == [4, 3]
    assert entry["epoch_moved"] == 1
    assert entry["logits"]["val_loss"]["values"] == [0.8, 0.8] and entry["clipped"]["val_loss"]["values"] == [0.7, 0.8]
    assert entry["keras_gap"] == {"clipped": 0.0, "logits": pytest.approx(0.1)} and entry["clip_gap"] == pytest.approx(
        0.1
    )

    metrics = {
        "cross_validation": {
            "dense64": {
                m: {"mean": v, "std": 0.0, "seeds": 3, "values": [v] * 3}
                for m, v in (("epoch", 13.0), ("val_loss", 0.34), ("val_accuracy", 0.88))
            }
        }
    }
    reference = {"cross_validation": {"dense64": {"epoch": 15, "val_loss": 0.329, "val_accuracy": 0.883}}}
    tolerance = {"accuracy": {"absolute": 0.02}, "loss": {"absolute": 0.03}, "epoch": {"absolute": 3}}
    assert gap_pattern(metrics["cross_validation"], found, reference)["definition"] == {
        "runs": 2,
        "epoch_moved": 1,
        "epoch_shift": 0.5,
        "largest_gap": pytest.approx(0.1),
    }
    text = "\n".join(render_other_backend(found, metrics, reference, tolerance, 2))
    assert (
        "own val_loss is the clipped one" in text
        and "Left out, trained with other params than these: dense64_l2." in text
    )
    assert (
        "| `dense64` | 15 | 3.0 ± 0.0 (2) | 3.5 ± 0.7 (2) | 1/2 | 0.800 ± 0.000 (2) | 0.750 ± 0.071 (2) | 0.1000 |"
        in text
    )
    assert "| `dense64` | 15 | 13.0 ± 0.0 (3) | 3.0 ± 0.0 (2) |" in text  # the backend table: post, TF, this backend
    # The post (15, 0.329) against TF's means (13, 0.34) and this backend's (3, 0.8).
    assert (
        "later than the seed mean in 1 on TensorFlow and 1 on this backend "
        "(post - mean: +2.0 and +12.0 epochs on average), "
        "and its val_loss lower in 1 and 1 (post - mean: -0.011 and -0.471)"
    ) in text


def digest(history: dict) -> str:
    return hashlib.sha256(json.dumps(history, sort_keys=True).encode()).hexdigest()


@pytest.mark.parametrize("backend, own", [("tensorflow", "logits"), ("jax", "clipped"), ("tf_keras", "logits")])
def test_each_backend_reports_one_definition_and_the_tool_trains_as_the_units(smoke, tmp_path, backend, own):
    """On real data (the smoke profile's 1,000 images, 24 epochs): Keras's own val_loss is the
    logits one on TensorFlow (Keras 3, and Keras 2 as tf_keras) and the clipped one on JAX, epoch by
    epoch; the clipped one is never above the logits one. On TensorFlow every fold's history is
    bit-identical to its DVC unit's; Keras 2 runs as Keras 2 (its version) and learns the task."""
    project, out = smoke["path"], tmp_path / "b.json"
    run(
        [
            "python",
            "-m",
            "tools.run_variants",
            "--post",
            "fashion",
            "--prepared",
            "data/prepared",
            "--variants",
            "dense64",
            "--seeds",
            "0",
            "--out",
            str(out),
            "--backend",
            backend,
        ],
        project,
    )
    data = json.loads(out.read_text())
    assert data["backend"] == backend and data["params"]["dense64"]["epochs"] == 24
    assert data["versions"]["keras"].split(".")[0] == ("2" if backend == "tf_keras" else "3")
    (row,) = data["runs"]
    curves = {k: np.array(v) for k, v in row["curves"].items()}
    assert curves["val_loss"].shape == (24,)
    np.testing.assert_allclose(curves["val_loss"], curves[f"val_loss_{own}"], rtol=1e-5)
    assert np.all(curves["val_loss_clipped"] <= curves["val_loss_logits"] + 1e-6)
    units = [read_curves(project / f"reports/runs/fashion/cv/dense64/seed0/fold{f}") for f in (0, 1)]
    if backend == "tensorflow":
        assert row["history_sha256"] == [digest(u) for u in units]
        np.testing.assert_allclose(curves["val_loss"], np.mean([u["val_loss"] for u in units], axis=0), rtol=1e-12)
    else:
        assert row["history_sha256"] != [digest(u) for u in units]  # another backend, other numbers
    # 10 classes on 500 training images a fold: chance is 0.1, the units reach about 0.8.
    assert 0.6 < curves["val_accuracy"][-1] <= 1.0
