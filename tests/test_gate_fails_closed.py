"""The regression gate fails closed: whatever it cannot check, or checks nothing of, is a failure
with one line, never a pass (each case passed silently, or crashed, before)."""

from __future__ import annotations

import hashlib
import json

import pytest
import yaml

from tools.gate import main as gate

CLAIMS = {
    "tolerance": {"accuracy": {"absolute": 0.02}},
    "claims": [
        {"id": "a_learns", "source": "post", "text": "a learns", "check": {"metric": "t.a.accuracy", "at_least": 0.5}}
    ],
}


@pytest.fixture
def run(tmp_path, capsys):
    """Write a metrics file, its dvc.lock entry, claims and floors; return a gate runner."""

    def check(
        mean=0.9, floors=None, claims=CLAIMS, edit_after_lock=None, raw_floors=None, raw_claims=None, raw_metrics=None
    ):
        metrics = tmp_path / "metrics.json"
        metrics.write_text(raw_metrics or json.dumps({"a": {"accuracy": {"mean": mean, "std": 0.01, "seeds": 3}}}))
        lock = tmp_path / "dvc.lock"
        md5 = hashlib.md5(metrics.read_bytes()).hexdigest()
        lock.write_text(
            yaml.safe_dump({"schema": "2.0", "stages": {"t": {"outs": [{"path": str(metrics), "md5": md5}]}}})
        )
        if edit_after_lock is not None:
            metrics.write_text(json.dumps({"a": {"accuracy": {"mean": edit_after_lock, "std": 0.01, "seeds": 3}}}))
        claims_file, floors_file = tmp_path / "claims.yaml", tmp_path / "floors.yaml"
        claims_file.write_text(raw_claims if raw_claims is not None else yaml.safe_dump(claims))
        floors_file.write_text(
            raw_floors
            if raw_floors is not None
            else yaml.safe_dump(floors or {"metrics": {"t.a.accuracy": {"floor": 0.8}}, "claims": ["a_learns"]})
        )
        code = gate(
            [
                "check",
                "--floors",
                str(floors_file),
                "--claims",
                str(claims_file),
                "--metrics",
                f"t={metrics}",
                "--lock",
                str(lock),
            ]
        )
        return code, capsys.readouterr().out

    return check


def test_a_sound_run_passes(run):
    code, out = run()
    assert code == 0 and "gate: 2 of 2 checks pass" in out


def test_nan_fails_every_bound(run):
    code, out = run(mean=float("nan"))
    assert code == 1 and "FAIL t.a.accuracy: nan is not a number" in out


def test_a_misspelled_section_is_refused_not_skipped(run):
    code, out = run(raw_floors="metric:\n  t.a.accuracy: {floor: 0.8}\nclaims: [a_learns]\n")
    assert code == 1 and out.splitlines() == [
        f"FAIL {out.split()[1]} ['claims', 'metric'] is not allowed; allowed: the sections metrics and claims"
    ]


def test_a_misspelled_bound_is_refused(run):
    code, out = run(raw_floors="metrics:\n  t.a.accuracy: {flor: 0.8}\n")
    assert code == 1 and "metrics.t.a.accuracy: {'flor': 0.8} is not allowed; allowed: floor and/or ceiling" in out


def test_nothing_to_check_fails(run):
    code, out = run(raw_floors="metrics: {}\nclaims: []\n")
    assert code == 1 and "no metric and no claim to check" in out


@pytest.mark.parametrize("which", ["floors", "claims"])
def test_a_malformed_file_is_one_line_not_a_traceback(run, which):
    broken = "metrics: [\n"
    code, out = run(**{f"raw_{which}": broken})
    assert code == 1 and len(out.splitlines()) == 1 and out.startswith("FAIL ") and "cannot be read" in out


def test_metrics_edited_by_hand_fail_even_when_better(run):
    code, out = run(edit_after_lock=0.99)  # above the floor, but not what the pipeline wrote
    assert code == 1 and "not the file" in out and "edited by hand" in out


@pytest.mark.parametrize(
    "raw, said",
    [
        ({"raw_floors": "metrics:\n  5: {floor: 0.8}\n"}, "metrics: the address 5 is not allowed"),
        ({"raw_claims": "tolerance: {}\nclaims: a_learns\n"}, "claims: 'a_learns' is not allowed"),
        ({"raw_claims": "tolerance: {}\nclaims: [a_learns]\n"}, "claims: 'a_learns' is not allowed"),
        ({"raw_metrics": "[0.9, 0.8]"}, "a JSON list, not a table's metrics"),
    ],
    ids=["an integer address", "claims a string", "claims a list of strings", "metrics a JSON list"],
)
def test_a_file_of_the_wrong_shape_is_one_line_naming_it(run, tmp_path, raw, said):
    """Valid YAML or JSON of the wrong shape: one line naming the file and what is wrong (each a
    traceback before)."""
    code, out = run(**raw)
    assert code == 1 and len(out.splitlines()) == 1 and said in out, out
    assert str(tmp_path) in out
