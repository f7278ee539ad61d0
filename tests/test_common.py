"""Shared helpers: atomic outputs (nothing half-written, leftovers of a killed run removed)
and params sections turned into validated configs."""

from dataclasses import dataclass

import pytest

from lib.common.core import (
    ConfigError,
    atomic_path,
    atomic_paths,
    build_config,
    load_params,
    require,
    seed_list,
    select,
)
from lib.results.stats import mean_std


def test_atomic_file_appears_only_on_success(tmp_path):
    target = tmp_path / "out" / "metrics.json"
    with pytest.raises(RuntimeError):
        with atomic_path(target) as tmp:
            tmp.write_text("half")
            raise RuntimeError("killed mid-write")
    assert not target.exists() and list(target.parent.iterdir()) == []
    with atomic_path(target) as tmp:
        tmp.write_text("whole")
    assert target.read_text() == "whole" and [p.name for p in target.parent.iterdir()] == ["metrics.json"]


def test_outputs_of_one_run_are_replaced_all_or_none(tmp_path):
    from lib.common.core import DataError

    run, model = tmp_path / "run", tmp_path / "model.keras"
    run.mkdir()
    (run / "metrics.json").write_text("old")
    model.write_text("old model")
    with pytest.raises(DataError, match="model.keras: written by another run while this one ran"):
        with atomic_paths(run, model) as (run_tmp, model_tmp):
            run_tmp.mkdir()
            (run_tmp / "metrics.json").write_text("new")
            model_tmp.write_text("new model")
            model.unlink()
            model.write_text("another run's model")  # e.g. a checkout while this run trained
    assert (run / "metrics.json").read_text() == "old" and model.read_text() == "another run's model"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model.keras", "run"]  # no temporary left
    with atomic_paths(run, model) as (run_tmp, model_tmp):
        run_tmp.mkdir()
        (run_tmp / "metrics.json").write_text("new")
        model_tmp.write_text("new model")
    assert (run / "metrics.json").read_text() == "new" and model.read_text() == "new model"


def test_atomic_directory_replaces_the_old_one_whole(tmp_path):
    target = tmp_path / "fold0"
    target.mkdir()
    (target / "old.json").write_text("old")
    with atomic_path(target) as tmp:
        tmp.mkdir()
        (tmp / "new.json").write_text("new")
    assert [p.name for p in target.iterdir()] == ["new.json"]


def test_leftovers_of_a_killed_run_are_removed(tmp_path):
    stale_dir = tmp_path / ".fold3.abc123.tmp"
    stale_dir.mkdir()
    (stale_dir / "history.json").write_text("{")
    other = tmp_path / ".fold30.zzz.tmp"  # another target's temporary: left alone
    other.mkdir()
    with atomic_path(tmp_path / "fold3") as tmp:
        tmp.mkdir()
    assert sorted(p.name for p in tmp_path.iterdir()) == [".fold30.zzz.tmp", "fold3"]


@dataclass(frozen=True)
class Example:
    units: tuple[int, ...]
    rate: float = 0.5
    name: str | None = None

    def __post_init__(self):
        require(0 <= self.rate < 1, "rate", self.rate, "allowed: 0 <= rate < 1")


def test_build_config_accepts_and_converts():
    config = build_config(Example, {"units": [3, 4], "rate": 0}, "section")
    assert config == Example(units=(3, 4), rate=0, name=None)


@pytest.mark.parametrize(
    "section, message",
    [
        ({"units": [3], "colour": 1}, "section: unknown key(s) colour; allowed: units, rate, name"),
        ({"rate": 0.1}, "section: missing key(s) units"),
        ({"units": [3], "rate": "high"}, "section.rate: 'high' is not allowed; allowed: a number"),
        ({"units": [3], "rate": True}, "section.rate: True is not allowed; allowed: a number"),
        ({"units": ["a"]}, "section.units: ['a'] is not allowed; allowed: a list of integers"),
        ({"units": [3], "rate": 1.5}, "section.rate: 1.5 is not allowed; allowed: 0 <= rate < 1"),
        ([1, 2], "section: expected a mapping"),
    ],
)
def test_build_config_errors_name_key_value_and_allowed(section, message):
    with pytest.raises(ConfigError) as err:
        build_config(Example, section, "section")
    assert str(err.value).startswith(message)


def test_select_seed_list_and_mean_std():
    assert select({"a": 1}, "a", "top") == 1
    with pytest.raises(ConfigError, match=r"top\.b: unknown name; allowed: a"):
        select({"a": 1}, "b", "top")
    assert seed_list([0, 1, 2], "x.seeds") == [0, 1, 2]
    for bad in ([], [0, 0], ["1"], 3, [True]):
        with pytest.raises(ConfigError, match=r"x\.seeds"):
            seed_list(bad, "x.seeds")
    assert mean_std([1.0, 3.0]) == {"mean": 2.0, "std": pytest.approx(1.414214, abs=1e-6), "seeds": 2}


def test_params_written_by_dvc_exp_run_parse_as_numbers(tmp_path):
    """`dvc exp run -S x.lr=1e-6` writes 1e-06: a float in YAML 1.2 (DVC), a string in YAML 1.1."""
    path = tmp_path / "params.yaml"
    path.write_text("x:\n  lr: 1e-06\n  epochs: 20\n  name: adam\n")
    assert load_params(path, "x") == {"lr": 1e-06, "epochs": 20, "name": "adam"}
    with pytest.raises(ConfigError, match=r"no section 'x.y'"):
        load_params(path, "x", "y")


def test_an_output_written_by_another_run_meanwhile_is_kept(tmp_path):
    """A run that finds its output replaced while it worked (it is an orphan of a cancelled dvc,
    and the user has rerun the unit) keeps the other run's output and discards its own."""
    from lib.common.core import DataError, atomic_path

    target = tmp_path / "run"
    with pytest.raises(DataError, match="written by another run while this one ran"):
        with atomic_path(target) as tmp:
            tmp.mkdir()
            (tmp / "mine").write_text("the older run")
            target.mkdir()
            (target / "theirs").write_text("the newer run, finished first")
    assert [p.name for p in target.iterdir()] == ["theirs"]
    assert list(tmp_path.iterdir()) == [target]  # this run's temporary is gone


def test_a_full_disk_is_one_line_naming_the_output_and_replaces_nothing(tmp_path, monkeypatch, capsys):
    """A unit that runs out of disk while writing its results (errno 28 from write_json): one line
    naming the output, exit 1, the earlier output kept and no temporary left."""
    import errno
    from pathlib import Path

    from lib.common.core import run_stage, write_json

    target = tmp_path / "run" / "metrics.json"
    write_json(target, {"accuracy": 0.9})
    real_write = Path.write_text

    def full(self, *args, **kwargs):
        if self.name.endswith(".tmp"):
            raise OSError(errno.ENOSPC, "No space left on device", str(self))
        return real_write(self, *args, **kwargs)

    monkeypatch.setattr(Path, "write_text", full)
    with pytest.raises(SystemExit) as ended:
        run_stage(lambda argv: write_json(target, {"accuracy": 0.5}))
    assert ended.value.code == 1
    lines = capsys.readouterr().err.splitlines()
    assert lines == [f"error: {target}: No space left on device; no output was replaced"]
    assert [p.name for p in target.parent.iterdir()] == ["metrics.json"] and '"accuracy": 0.9' in target.read_text()
