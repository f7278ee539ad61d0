"""Report, plots and the regression gate on the smoke profile through DVC: the report shows
every table and claim, `dvc plots` draws every plot, and the gate passes the unchanged
pipeline but fails, naming the row and the claim, when one row is made worse on purpose."""

import json
import subprocess
import sys

import pytest

from stages.claims import Outcome, check
from tests.conftest import dvc, run
from tools.gate import derive, run_check


def gate(project):
    return subprocess.run([sys.executable, "-m", "tools.gate", "check", "--floors", "floors/smoke.yaml"],
                          cwd=project, capture_output=True, text=True)


TABLES = {"t": {"a": {"accuracy": {"mean": 0.9, "std": 0.01, "seeds": 3}}, "b": {"accuracy": {"mean": 0.5, "std": 0.1, "seeds": 3}},
                "none": {"epoch": {"mean": None, "std": None, "seeds": 0}}}}


@pytest.mark.parametrize(
    "spec, holds",
    [
        ({"greater": "t.a.accuracy", "than": "t.b.accuracy", "by": 0.3}, True),
        ({"greater": "t.a.accuracy", "than": "t.b.accuracy", "by": 0.5}, False),
        ({"greater": "t.a.accuracy", "than_all": ["t.b.accuracy", "t.a.accuracy"]}, False),
        ({"metric": "t.b.accuracy", "at_most": 0.5}, True),
        ({"metric": "t.b.accuracy", "at_least": 0.6}, False),
        ({"close": ["t.a.accuracy", "t.b.accuracy"], "within": 0.4}, True),
        ({"greater": "t.none.epoch", "than": "t.a.accuracy", "by": 1}, False),
        ({"metric": ["t.a.accuracy", "t.b.accuracy"], "at_most": 0.8}, False),
        ({"metric": ["t.a.accuracy", "t.b.accuracy"], "at_least": 0.5}, True),
        ({"metric": "t.missing.accuracy", "at_most": 1}, None),
    ],
)
def test_claim_checks(spec, holds):
    outcome = check({"id": "x", "text": "x", "check": spec}, TABLES)
    assert isinstance(outcome, Outcome) and outcome.holds is holds


def test_derived_floors_pass_then_catch_a_drop():
    claims = {"claims": [{"id": "a_beats_b", "text": "a beats b", "check": {"greater": "t.a.accuracy", "than": "t.b.accuracy", "by": 0.3}}]}
    floors = derive(TABLES, claims, std_factor=3, margin=0.02)
    assert floors == {"metrics": {"t.a.accuracy": 0.87, "t.b.accuracy": 0.2}, "claims": ["a_beats_b"]}
    assert run_check(TABLES, claims, floors) == []
    worse = json.loads(json.dumps(TABLES))
    worse["t"]["a"]["accuracy"]["mean"] = 0.6
    failures = run_check(worse, claims, floors)
    assert failures[0].startswith("t.a.accuracy: 0.6 is below its floor 0.87")
    assert failures[1].startswith("claim a_beats_b no longer holds")


def test_report_shows_every_table_and_claim(smoke):
    report = (smoke["path"] / "reports" / "README.md").read_text()
    for heading in ("## MNIST tips", "### 5-fold cross-validation", "### The chosen model", "### CNN", "## The posts' claims"):
        assert heading in report
    assert "| 4 | `deep_relu` | 0.9960 |" in report and "| `dense64` | 15 |" in report
    marks = report.count("| pass |") + report.count("| **fail** |") + report.count("| not measured |")
    assert marks == 14  # every claim in claims.yaml, measured or not
    assert "| pass | Adam reaches about the accuracy of SGD" in report
    assert "![cnn](fashion/figures/cnn.png)" in report


def test_every_plot_has_data(smoke):
    shown = json.loads(dvc(["plots", "show", "--json"], smoke["path"]).stdout)
    assert not shown.get("errors")
    names = list(shown["data"])
    for title in ("MNIST tips, test accuracy per epoch (mean over seeds)",
                  "Fashion-MNIST dense nets, validation loss per epoch (mean over folds and seeds)",
                  "Fashion-MNIST CNN, test set confusion (summed over seeds)"):
        assert title in names and shown["data"][title]
    assert any(n.endswith("classes.png") for n in names) and any(n.endswith("cnn.png") for n in names)


def test_gate_passes_then_names_the_degraded_row_and_claim(smoke):
    project = smoke["path"]
    passed = gate(project)
    assert passed.returncode == 0, passed.stdout + passed.stderr
    try:
        dvc(["exp", "run", "-S", "mnist_tips.variants.deep_relu_adam.learning_rate=1e-6"], project, env=smoke["env"])
        failed = gate(project)
        assert failed.returncode == 1
        assert "FAIL mnist_tips.deep_relu_adam.test_accuracy:" in failed.stdout
        assert "FAIL claim adam_about_as_accurate no longer holds" in failed.stdout
        metric_failures = [line for line in failed.stdout.splitlines() if line.startswith(("FAIL mnist", "FAIL fashion"))]
        assert metric_failures and all(".deep_relu_adam." in line for line in metric_failures)  # only that row
    finally:
        run(["git", "checkout", "--", "."], project)  # the run folders are git-tracked, as in the repo
    assert gate(project).returncode == 0
