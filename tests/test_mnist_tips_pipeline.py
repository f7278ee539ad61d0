"""The MNIST tips table through DVC on the smoke profile: per-seed units, the summary table,
one changed variant rerunning only its own stages, and a forced rerun giving identical metrics."""

import json
import re

import pytest

from lib.results.runs import read_curves
from tests.conftest import dvc, restore_committed
from tools.timing import ran_stages


def runs_dir(smoke):
    return smoke["path"] / "reports" / "runs" / "mnist_tips"


def test_every_variant_and_seed_is_its_own_stage(smoke):
    # Each row runs in the stage group of the prepared file it trains on.
    for group, variant in (
        ("mnist_tips", "deep_relu_adam"),
        ("mnist_tips_noisy", "noisy_dropout"),
        ("mnist_tips_unscaled", "unscaled"),
    ):
        for seed in (0, 1):
            assert f"Running stage '{group}@{variant}-{seed}'" in smoke["first"].stdout
            run_dir = runs_dir(smoke) / variant / f"seed{seed}"
            metrics = json.loads((run_dir / "metrics.json").read_text())
            assert 0.0 <= metrics["test_accuracy"] <= 1.0
            config = json.loads((run_dir / "config.json").read_text())
            assert config["seed"] == seed and config["hidden_units"] == [32, 32] and config["epochs"] == 2
            assert config["data"] == group
            history = read_curves(run_dir)
            assert len(history["loss"]) == 2 and history["val_accuracy"][-1] == pytest.approx(
                metrics["test_accuracy"], abs=1e-6
            )
            curve = (run_dir / "live" / "plots" / "metrics" / "eval" / "accuracy.tsv").read_text().splitlines()
            assert len(curve) == 3  # header + one line per epoch (dvclive files val_* under eval/)


def test_small_relu_adam_net_learns_mnist(smoke):
    for seed in (0, 1):
        metrics = json.loads((runs_dir(smoke) / "deep_relu_adam" / f"seed{seed}" / "metrics.json").read_text())
        assert 0.85 < metrics["train_accuracy"] <= 1.0 and 0.85 < metrics["test_accuracy"] <= 1.0


def test_summary_metrics_and_table(smoke):
    summary = json.loads((smoke["path"] / "reports" / "mnist_tips" / "metrics.json").read_text())
    assert sorted(summary) == ["deep_relu", "deep_relu_adam", "noisy_dropout", "unscaled"]
    per_seed = [
        json.loads((runs_dir(smoke) / "deep_relu_adam" / f"seed{s}" / "metrics.json").read_text())["test_accuracy"]
        for s in (0, 1)
    ]
    assert summary["deep_relu_adam"]["test_accuracy"]["mean"] == pytest.approx(sum(per_seed) / 2, abs=1e-6)
    assert summary["deep_relu_adam"]["test_accuracy"]["seeds"] == 2
    table = (smoke["path"] / "reports" / "mnist_tips" / "table.md").read_text()
    rows = [
        line.split(" | ")[1] for line in table.splitlines() if line.startswith("| ") and "`" in line.split(" | ")[1]
    ]
    assert rows[:4] == [
        "`deep_relu`",
        "`deep_relu_adam`",
        "`noisy_dropout`",
        "`unscaled`",
    ]  # the post's order: rows 4, 6, 8, 9
    assert "| 6 | `deep_relu_adam` | 0.9907 |" in table and "| 9 | `unscaled` | 0.1001 |" in table
    shown = dvc(["metrics", "show", "--json"], smoke["path"]).stdout
    # The DVC metric is the report's headline; the table's summary and the per-seed files are plain outputs.
    assert "reports/headline.json" in shown and "reports/mnist_tips" not in shown and "reports/runs" not in shown


def folder_bytes(folder):
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def test_forced_rerun_of_one_unit_gives_identical_files(smoke):
    unit = runs_dir(smoke) / "unscaled" / "seed1"
    before = folder_bytes(unit)
    assert {"metrics.json", "config.json", "live/plots/metrics/eval/accuracy.tsv"} <= set(before)
    rerun = dvc(
        ["repro", "--force", "--single-item", "mnist_tips_unscaled@unscaled-1"], smoke["path"], env=smoke["env"]
    )
    assert "Running stage 'mnist_tips_unscaled@unscaled-1'" in rerun.stdout
    assert folder_bytes(unit) == before


def test_changing_the_noise_reruns_only_the_noisy_rows(smoke):
    """Each MNIST unit depends on its own data file only: a new noise level reruns the noisy
    files (one per seed), their rows and the summaries, and nothing else. (`dvc repro --dry`
    cannot show this: it does not know the prepared file will change, so it lists no stage
    downstream of it.)"""
    project = smoke["path"]
    params = (project / "params.yaml").read_text()
    assert params.count("test_std: 1.0") == 1
    try:
        (project / "params.yaml").write_text(params.replace("test_std: 1.0", "test_std: 0.5"))
        out = dvc(["repro"], project, env=smoke["env"]).stdout
    finally:
        restore_committed(project)  # the committed results back, without training them again
    ran = sorted(ran_stages(out) + re.findall(r"Stage '([^']+)' is cached", out))
    assert sorted(set(ran)) == [
        "check_params",
        "mnist_tips_noisy@noisy_dropout-0",
        "mnist_tips_noisy@noisy_dropout-1",
        "mnist_tips_table",
        "noise@0",
        "noise@1",
        "report",
    ], out  # the params check runs on every params change
    assert "up to date" in dvc(["status"], project).stdout
