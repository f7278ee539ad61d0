"""What a table stage checks before it publishes anything: that params.yaml is the one this run
started from, and that every unit's run folder was trained with the params it is filed under.

Two `dvc exp run` in one workspace share params.yaml: the second writes its `-S` value there
before DVC refuses it on a lock, and the first run's later stages then train with it, while
DVC records, for a unit that was training at that moment, the new value beside results made
with the old one. The first check turns the mixed run into a failure; the second catches a
unit whose recorded params are not the ones it trained with, on any later run.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from pathlib import Path

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


def check_unchanged_since_start(params_path: Path, lock_path: Path) -> None:
    """Refuse when params.yaml differs from what the `check_params` stage of this run read.

    That stage runs (or is found up to date) first in every run, and DVC records the params it
    read in dvc.lock before any later stage starts; a difference now means params.yaml changed
    while this run was going."""
    lock = load_yaml(lock_path) if Path(lock_path).is_file() else None
    entry = ((lock or {}).get("stages") or {}).get("check_params")
    if not entry:
        raise ConfigError(f"{lock_path}: no record of the check_params stage; run `dvc repro`, which runs it first")
    # dvc.lock names the file relative to the project root, where dvc.lock is.
    key = os.path.relpath(Path(params_path).resolve(), Path(lock_path).resolve().parent)
    started = (entry.get("params") or {}).get(key)
    if started is None:
        raise ConfigError(f"{lock_path}: check_params did not record {params_path}; run `dvc repro`, which runs it first")
    changed = differences(started, load_yaml(params_path) or {})
    if changed:
        raise ConfigError(f"{params_path} changed while this run was going ({'; '.join(changed[:3])}"
                          f"{'; ...' if len(changed) > 3 else ''}), so its units may have trained with different "
                          f"params; nothing was published. Another `dvc exp run` or an edit in this workspace? "
                          f"{SIDE_BY_SIDE}. Then run `dvc repro` again.")


def check_trained_with(run: Path, expected: Mapping, stage: str) -> dict:
    """Refuse a run folder whose config.json disagrees with `expected` (the effective config its params
    give, lib.train.configs) on any key `expected` names; return the config."""
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
    """The Keras backend every unit of a table trained on (config.json `backend`, by unit name);
    refuse units from different backends (or with none recorded): their numbers differ in the
    last digits, and a table must not mix them silently."""
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
    """Every unit of a table (stage name -> its run folder and the effective config its params give)
    trained with those params, all on one Keras backend, which is returned."""
    return check_one_backend({unit: check_trained_with(run, config, unit) for unit, (run, config) in units.items()})


def units_backend(runs: Path) -> str:
    """The one Keras backend every unit under `runs` recorded in its config.json."""
    return check_one_backend({str(path.parent): json.loads(path.read_text()) for path in sorted(Path(runs).rglob("config.json"))})
