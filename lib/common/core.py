"""What every stage shares: its errors, params sections as validated configs, atomic writes, and the
entry point that turns an expected error into one line and ends the stage with the dvc that started it."""

from __future__ import annotations

import contextlib
import dataclasses
import glob
import json
import logging
import os
import shutil
import sys
import tempfile
import types
import typing
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path

from ruamel.yaml import YAML

log = logging.getLogger("stages")


class DataError(ValueError):
    """A data file is missing, corrupt or not what the pipeline expects."""


class ConfigError(ValueError):
    """A params.yaml section is missing a key, has an unknown one, or holds an impossible value."""


def load_yaml(path: Path) -> typing.Any:
    """Parse YAML 1.2, as DVC does: `dvc exp run -S lr=1e-6` writes `1e-06`, a float in
    YAML 1.2 but a string to a YAML 1.1 parser such as PyYAML."""
    with open(path, encoding="utf-8") as stream:
        return YAML(typ="safe", pure=True).load(stream)


def load_params(path: Path, *keys: str) -> typing.Any:
    """Return the section `keys[0].keys[1]...` of a params file."""
    node = load_yaml(path) or {}
    where = []
    for key in keys:
        where.append(key)
        if not isinstance(node, Mapping) or key not in node:
            raise ConfigError(f"{path}: no section '{'.'.join(where)}'")
        node = node[key]
    return node


def _check_type(value: typing.Any, annotation: typing.Any) -> bool:
    origin = typing.get_origin(annotation)
    if origin in (typing.Union, types.UnionType):
        return any(_check_type(value, arg) for arg in typing.get_args(annotation))
    if annotation is type(None):
        return value is None
    if annotation is float:
        return isinstance(value, (int, float)) and not isinstance(value, bool)
    if annotation is int:
        return isinstance(value, int) and not isinstance(value, bool)
    if origin in (tuple, list):
        args = typing.get_args(annotation)
        return isinstance(value, (list, tuple)) and all(_check_type(v, args[0]) for v in value)
    if origin is dict:
        return isinstance(value, Mapping)
    return isinstance(value, annotation)


def build_config(cls: type, section: Mapping, where: str):
    """Turn a params section into the frozen dataclass `cls`, or fail naming the bad key.

    Unknown keys, missing keys and wrong types are caught here; impossible values are
    caught by the dataclass's own `__post_init__`, which raises ConfigError too.
    """
    if not isinstance(section, Mapping):
        raise ConfigError(f"{where}: expected a mapping of settings, got {section!r}")
    fields = {f.name: f for f in dataclasses.fields(cls)}
    hints = typing.get_type_hints(cls)
    unknown = sorted(set(section) - set(fields))
    if unknown:
        raise ConfigError(f"{where}: unknown key(s) {', '.join(unknown)}; allowed: {', '.join(fields)}")
    missing = [
        name
        for name, f in fields.items()
        if name not in section
        and f.default is dataclasses.MISSING
        and f.default_factory is dataclasses.MISSING
    ]
    if missing:
        raise ConfigError(f"{where}: missing key(s) {', '.join(missing)}")
    values = {}
    for name, value in section.items():
        if not _check_type(value, hints[name]):
            raise ConfigError(f"{where}.{name}: {value!r} is not allowed; allowed: {_type_name(hints[name])}")
        values[name] = tuple(value) if typing.get_origin(hints[name]) is tuple else value
    try:
        return cls(**values)
    except ConfigError as exc:
        raise ConfigError(f"{where}.{exc}") from None


def select(sections: Mapping, name: str, where: str) -> typing.Any:
    """`sections[name]`, or a ConfigError naming `where.name` and the names that exist."""
    if not isinstance(sections, Mapping) or name not in sections:
        allowed = ", ".join(sections) if isinstance(sections, Mapping) else "none"
        raise ConfigError(f"{where}.{name}: unknown name; allowed: {allowed}")
    return sections[name]


MAX_SEED = 2**32 - 1  # numpy's seeds are 0 .. 2**32 - 1


def seed_list(value: typing.Any, where: str) -> list[int]:
    """A params `seeds` list: non-empty, integers from 0 to MAX_SEED, no repeats."""
    ok = isinstance(value, list) and value and all(isinstance(s, int) and not isinstance(s, bool) for s in value)
    if not ok or len(set(value)) != len(value) or not all(0 <= s <= MAX_SEED for s in value):
        raise ConfigError(f"{where}: {value!r} is not allowed; "
                          f"allowed: a non-empty list of distinct integers from 0 to {MAX_SEED}")
    return value


def _type_name(annotation: typing.Any) -> str:
    """A type hint in words: `a number`, `null or an integer`, `a list of integers`."""
    origin = typing.get_origin(annotation)
    if origin in (typing.Union, types.UnionType):
        return " or ".join(_type_name(arg) for arg in typing.get_args(annotation))
    if origin in (tuple, list):
        return f"a list of {_type_name(typing.get_args(annotation)[0]).split(' ', 1)[1]}s"
    if origin is dict or annotation is dict:
        return "a mapping"
    words = {int: "an integer", float: "a number", bool: "true or false", str: "a string", type(None): "null"}
    return words.get(annotation, f"a {getattr(annotation, '__name__', annotation)}")


def require(condition: bool, key: str, value: typing.Any, allowed: str) -> None:
    """Raise the ConfigError of a `__post_init__` check: `key: value is not allowed; allowed`."""
    if not condition:
        raise ConfigError(f"{key}: {value!r} is not allowed; {allowed}")


def config_dict(config) -> dict:
    """A config dataclass as plain JSON-ready data, to write next to a stage's results."""
    return json.loads(json.dumps(dataclasses.asdict(config)))


@contextlib.contextmanager
def atomic_path(target: Path) -> Iterator[Path]:
    """Yield a temporary sibling of `target`; move it onto `target` only if the block succeeds.

    Works for files and directories. A failure or interruption leaves `target` as it was
    and removes the temporary, so no later stage or DVC ever sees a half-written output.
    """
    with atomic_paths(target) as (tmp,):
        yield tmp


@contextlib.contextmanager
def atomic_paths(*targets: Path) -> Iterator[tuple[Path, ...]]:
    """`atomic_path` for several outputs of one run, all or nothing: none is replaced if the
    block fails or if another run wrote any of them meanwhile."""
    targets = tuple(Path(t) for t in targets)
    befores, tmps = [], []
    try:
        for target in targets:
            target.parent.mkdir(parents=True, exist_ok=True)
            befores.append(_state(target))
            # A run killed with SIGKILL cannot clean up: drop its leftovers before starting anew.
            for stale in target.parent.glob(f".{glob.escape(target.name)}.*.tmp"):
                shutil.rmtree(stale) if stale.is_dir() else stale.unlink()
            tmp = Path(tempfile.mkdtemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent))
            tmp.rmdir()  # the caller decides whether it becomes a file or a directory
            tmps.append(tmp)
        try:
            yield tuple(tmps)
        except OSError as exc:  # e.g. a full disk: name the output, not its temporary
            for target, tmp in zip(targets, tmps):
                if exc.filename and str(exc.filename).startswith(str(tmp)):
                    raise OSError(exc.errno, exc.strerror, str(target)) from exc
            raise
        for target, before in zip(targets, befores):
            if _state(target) != before:
                # Another run wrote the output while this one worked (e.g. this is an orphan of a
                # cancelled dvc, and the user has rerun the unit): its result is the current one.
                raise DataError(f"{target}: written by another run while this one ran; "
                                "keeping that one, discarding this run's")
        for target, tmp in zip(targets, tmps):
            if target.is_dir() and not target.is_symlink():
                shutil.rmtree(target)
            os.replace(tmp, target)
    finally:
        for tmp in tmps:
            if tmp.is_dir():
                shutil.rmtree(tmp, ignore_errors=True)
            elif tmp.exists():
                tmp.unlink()


def _state(path: Path) -> tuple | None:
    """What identifies the current version of an output: None if absent, else inode and mtime."""
    try:
        found = path.lstat()
    except FileNotFoundError:
        return None
    return (found.st_ino, found.st_mtime_ns)


def write_json(path: Path, data: typing.Any) -> None:
    with atomic_path(path) as tmp:
        tmp.write_text(json.dumps(data, indent=2, sort_keys=True) + "\n", encoding="utf-8")


def die_with_parent() -> None:
    """Ask Linux to end this process (SIGTERM) when the one that started it ends. Safe in a
    `preexec_fn`: it starts no thread."""
    if not sys.platform.startswith("linux"):
        return
    import ctypes
    import signal

    parent = os.getppid()
    pr_set_pdeathsig = 1
    ctypes.CDLL(None, use_errno=True).prctl(pr_set_pdeathsig, signal.SIGTERM)
    if os.getppid() != parent:  # the parent ended before the request took effect
        os.kill(os.getpid(), signal.SIGTERM)


SHELLS = frozenset({"sh", "dash", "bash", "zsh", "fish", "ksh", "mksh", "busybox"})


def _proc_stat(pid: int) -> tuple[str, int, str] | None:
    """(name, parent pid, start time) of a live process from /proc, or None if it is gone."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    name, rest = stat[stat.index("(") + 1 : stat.rindex(")")], stat[stat.rindex(")") + 2 :].split()
    return name, int(rest[1]), rest[19]  # fields 4 (ppid) and 22 (starttime) of proc(5)


def die_with_dvc() -> None:
    """A stage must not train on as an orphan when its dvc is cancelled (SIGTERM to dvc alone, as
    a CI runner or a job scheduler sends), nor later write over a rerun's result. dvc starts the
    command through `$SHELL -c` (DVC_STAGE is then set); bash execs the command, so dvc is the
    parent, but dash (/bin/sh where SHELL is unset, as on many CI runners) does not: the parent is
    a shell that outlives dvc. So: die with the parent, and under dvc also watch the nearest
    ancestor that is not a shell, ending this process once it is gone."""
    die_with_parent()
    if not sys.platform.startswith("linux") or "DVC_STAGE" not in os.environ:
        return
    import signal
    import threading
    import time

    owner = os.getppid()
    found = _proc_stat(owner)
    while found is not None and found[0] in SHELLS and found[1] > 1:
        owner = found[1]
        found = _proc_stat(owner)
    if found is None or owner == os.getppid():
        return  # the parent itself is dvc: PR_SET_PDEATHSIG covers it
    started = found[2]

    def watch() -> None:
        while True:
            now = _proc_stat(owner)
            if now is None or now[2] != started:  # gone (or its pid reused by another process)
                os.kill(os.getpid(), signal.SIGTERM)
                return
            time.sleep(0.5)

    threading.Thread(target=watch, name="die-with-dvc", daemon=True).start()


def run_stage(main: Callable[[list[str] | None], None]) -> None:
    """Entry point wrapper: one readable line on stderr and exit code 1 for expected errors;
    the stage ends with the dvc that started it."""
    die_with_dvc()
    logging.basicConfig(level=logging.INFO, format="%(message)s", stream=sys.stdout)
    try:
        main(None)
    except (ConfigError, DataError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        sys.exit(1)
    except OSError as exc:  # a full disk, a folder it may not write: nothing was replaced (atomic writes)
        where = f"{exc.filename}: " if exc.filename else ""
        print(f"error: {where}{exc.strerror or exc}; no output was replaced", file=sys.stderr)
        sys.exit(1)
    except KeyboardInterrupt:
        print("interrupted: no output was written", file=sys.stderr)
        sys.exit(130)
