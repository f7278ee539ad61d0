"""What a table stage checks before it publishes anything: that params.yaml is the one this run started
from (two `dvc exp run` in one workspace share it, and DVC can record a new value beside results made with
the old), and that every unit's run folder was trained with the params it is filed under."""

from __future__ import annotations

import contextlib
import json
import os
import time
import typing
from collections.abc import Mapping
from pathlib import Path

from ruamel.yaml import YAML, YAMLError

from lib.common.core import ConfigError, load_yaml

SIDE_BY_SIDE = ("run experiments side by side with `dvc exp run --queue` and `dvc queue start -j N`, "
                "or one at a time with `dvc exp run --temp`")


def differences(before, after, where: str = "") -> list[str]:
    """The dotted keys whose values differ between two nested mappings, with both values."""
    if isinstance(before, Mapping) and isinstance(after, Mapping):
        found = []
        for key in sorted(set(before) | set(after), key=str):
            inner = f"{where}.{key}" if where else str(key)
            if key not in before:
                found.append(f"{inner}: added ({after[key]!r})")
            elif key not in after:
                found.append(f"{inner}: removed (was {before[key]!r})")
            else:
                found.extend(differences(before[key], after[key], inner))
        return found
    return [] if before == after else [f"{where}: {before!r} -> {after!r}"]


def read_settled(path: Path, ready: typing.Callable[[typing.Any], bool], wait_s: float = 10.0) -> typing.Any:
    """A YAML file another process may be rewriting in place (parallel `dvc repro` processes rewrite dvc.lock
    without a rename), parsed only from reads that give the same bytes twice in a row, so never from a file cut
    short: the first such read that is `ready`, else what the file holds once unchanged for a second (None if
    it is missing or not YAML); at most `wait_s` in all."""
    deadline, last, since = time.monotonic() + wait_s, None, time.monotonic()
    while True:
        try:
            text = Path(path).read_bytes()
        except FileNotFoundError:
            text = None
        now = time.monotonic()
        if text != last:
            last, since = text, now
        elif text is None:
            return None
        else:
            data = None
            with contextlib.suppress(YAMLError):
                data = YAML(typ="safe", pure=True).load(text)
            if ready(data) or now - since >= 1.0 or now > deadline:
                return data
        time.sleep(0.05)


def check_unchanged_since_start(params_path: Path, lock_path: Path) -> None:
    """Refuse when params.yaml differs from what this run's `check_params` stage, which runs first, read
    (as dvc.lock records it): params.yaml changed while this run was going."""
    def entry_of(lock) -> dict | None:
        stages = lock.get("stages") if isinstance(lock, dict) else None
        return stages.get("check_params") if isinstance(stages, dict) else None

    entry = entry_of(read_settled(lock_path, lambda lock: entry_of(lock) is not None))
    if not entry:
        raise ConfigError(f"{lock_path}: no record of the check_params stage; run `dvc repro`, which runs it first")
    # dvc.lock names the file relative to the project root, where dvc.lock is.
    key = os.path.relpath(Path(params_path).resolve(), Path(lock_path).resolve().parent)
    started = (entry.get("params") or {}).get(key)
    if started is None:
        raise ConfigError(f"{lock_path}: check_params did not record {params_path}; "
                          "run `dvc repro`, which runs it first")
    changed = differences(started, load_yaml(params_path) or {})
    if changed:
        raise ConfigError(f"{params_path} changed while this run was going ({'; '.join(changed[:3])}"
                          f"{'; ...' if len(changed) > 3 else ''}), so its units may have trained with different "
                          f"params; nothing was published. Another `dvc exp run` or an edit in this workspace? "
                          f"{SIDE_BY_SIDE}. Then run `dvc repro` again.")


def check_trained_with(run: Path, expected: Mapping, stage: str) -> dict:
    """Refuse a run folder whose config.json disagrees with `expected` (the config its params give); return it."""
    path = Path(run) / "config.json"
    if not path.is_file():
        raise ConfigError(f"{path}: missing; run `dvc repro` for {stage} first")
    config = json.loads(path.read_text())
    wrong = [f"{key}={config.get(key, 'missing')!r} (params.yaml: {value!r})"
             for key, value in expected.items() if key not in config or config[key] != value]
    if wrong:
        raise ConfigError(f"{run} was trained with {', '.join(wrong)}: params.yaml changed while it trained "
                          f"(two runs in one workspace?). Retrain it: `dvc repro --force --single-item {stage}`; "
                          f"{SIDE_BY_SIDE}")
    return config


def check_one_backend(configs: Mapping[str, Mapping]) -> str:
    """The one Keras backend the units (config.json by unit name) trained on; refuse a mix (or none recorded):
    their numbers differ in the last digits, and a table must not mix them silently."""
    by_backend: dict[str, list[str]] = {}
    for unit, config in configs.items():
        by_backend.setdefault(config.get("backend") or "not recorded", []).append(unit)
    if len(by_backend) == 1:
        return next(iter(by_backend))
    found = "; ".join(f"{backend}: {len(units)} ({', '.join(units[:2])}{', ...' if len(units) > 2 else ''})"
                      for backend, units in sorted(by_backend.items()))
    raise ConfigError(f"the units of this table trained on different Keras backends ({found}); nothing was published. "
                      "Retrain them under one backend: `dvc repro --force` with `training.backend` set in params.yaml")


def check_units(units: dict[str, tuple[Path, dict]]) -> str:
    """The one Keras backend of a table's units (name -> run folder, config), each trained with its params."""
    return check_one_backend({unit: check_trained_with(run, config, unit) for unit, (run, config) in units.items()})


def units_backend(runs: Path) -> str:
    """The one Keras backend every unit under `runs` recorded in its config.json."""
    configs = sorted(Path(runs).rglob("config.json"))
    return check_one_backend({str(path.parent): json.loads(path.read_text()) for path in configs})
