"""The MNIST tips table through DVC on the smoke profile: per-seed units, the summary table,
one changed variant rerunning only its own stages, and a forced rerun giving identical metrics."""

import json

import pytest

from tests.conftest import dvc


def runs_dir(smoke):
    return smoke["path"] / "reports" / "runs" / "mnist_tips"


def test_every_variant_and_seed_is_its_own_stage(smoke):
    for variant in ("deep_relu_adam", "unscaled"):
        for seed in (0, 1):
            assert f"Running stage 'mnist_tips@{variant}-{seed}'" in smoke["first"].stdout
            run_dir = runs_dir(smoke) / variant / f"seed{seed}"
            metrics = json.loads((run_dir / "metrics.json").read_text())
            assert 0.0 <= metrics["test_accuracy"] <= 1.0
            config = json.loads((run_dir / "config.json").read_text())
            assert config["seed"] == seed and config["hidden_units"] == [32, 32] and config["epochs"] == 2
            curve = (run_dir / "live" / "plots" / "metrics" / "eval" / "accuracy.tsv").read_text().splitlines()
            assert len(curve) == 3  # header + one line per epoch (dvclive files val_* under eval/)


def test_small_relu_adam_net_learns_mnist(smoke):
    for seed in (0, 1):
        metrics = json.loads((runs_dir(smoke) / "deep_relu_adam" / f"seed{seed}" / "metrics.json").read_text())
        assert 0.85 < metrics["train_accuracy"] <= 1.0 and 0.85 < metrics["test_accuracy"] <= 1.0


def test_summary_metrics_and_table(smoke):
    summary = json.loads((smoke["path"] / "reports" / "mnist_tips" / "metrics.json").read_text())
    assert sorted(summary) == ["deep_relu", "deep_relu_adam", "unscaled"]
    per_seed = [
        json.loads((runs_dir(smoke) / "deep_relu_adam" / f"seed{s}" / "metrics.json").read_text())["test_accuracy"]
        for s in (0, 1)
    ]
    assert summary["deep_relu_adam"]["test_accuracy"]["mean"] == pytest.approx(sum(per_seed) / 2, abs=1e-6)
    assert summary["deep_relu_adam"]["test_accuracy"]["seeds"] == 2
    table = (smoke["path"] / "reports" / "mnist_tips" / "table.md").read_text()
    assert "| 6 | `deep_relu_adam` | 0.9907 |" in table and "| 9 | `unscaled` | 0.1001 |" in table
    shown = dvc(["metrics", "show"], smoke["path"]).stdout
    assert "deep_relu_adam.test_accuracy.mean" in shown and "reports/runs/mnist_tips/unscaled/seed1/metrics.json" in shown


def test_forced_rerun_of_one_unit_gives_identical_metrics(smoke):
    unit = runs_dir(smoke) / "unscaled" / "seed1"
    before = (unit / "metrics.json").read_bytes()
    rerun = dvc(["repro", "--force", "--single-item", "mnist_tips@unscaled-1"], smoke["path"], env=smoke["env"])
    assert "Running stage 'mnist_tips@unscaled-1'" in rerun.stdout
    assert (unit / "metrics.json").read_bytes() == before


def test_changing_one_variant_reruns_only_its_stages(smoke):
    # --temp: run the experiment outside the workspace, which the other smoke tests share.
    result = dvc(["exp", "run", "--temp", "-S", "mnist_tips.variants.unscaled.epochs=1"], smoke["path"], env=smoke["env"])
    out = result.stdout
    for seed in (0, 1):
        assert f"Running stage 'mnist_tips@unscaled-{seed}'" in out
        assert f"Stage 'mnist_tips@deep_relu_adam-{seed}' didn't change, skipping" in out
    assert "Running stage 'mnist_tips_table'" in out
    assert "Running stage 'preprocess" not in out and "Running stage 'fetch" not in out
    assert "Running stage 'fashion" not in out
    experiments = [
        exp for rev in json.loads(dvc(["exp", "show", "--json"], smoke["path"]).stdout) for exp in rev.get("experiments") or []
    ]
    assert len(experiments) == 1
    data = experiments[0]["revs"][0]["data"]
    assert data["params"]["params.yaml"]["data"]["mnist_tips"]["variants"]["unscaled"]["epochs"] == 1
    assert "unscaled" in data["metrics"]["reports/mnist_tips/metrics.json"]["data"]
