"""Shared fixtures: tiny IDX mirrors written by the tests, a local HTTP server, and the real
pipeline run through DVC in a scratch copy of the project."""

from __future__ import annotations

import copy
import functools
import gzip
import hashlib
import http.server
import os
import re
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest
import yaml

from tools.smoke import make_project

ROOT = Path(__file__).resolve().parents[1]
FILE_NAMES = {
    "train_images": "train-images-idx3-ubyte.gz",
    "train_labels": "train-labels-idx1-ubyte.gz",
    "test_images": "t10k-images-idx3-ubyte.gz",
    "test_labels": "t10k-labels-idx1-ubyte.gz",
}


def idx_bytes(array: np.ndarray) -> bytes:
    """The IDX encoding of a uint8 array: magic 0x0000 08 <ndim>, big-endian sizes, data."""
    array = np.asarray(array, dtype=np.uint8)
    header = bytes([0, 0, 0x08, array.ndim]) + b"".join(int(n).to_bytes(4, "big") for n in array.shape)
    return header + array.tobytes()


def write_idx_gz(path: Path, array: np.ndarray, compresslevel: int = 9) -> str:
    """Write `array` as a gzip-compressed IDX file; return the SHA-256 of the decompressed bytes."""
    raw = idx_bytes(array)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(gzip.compress(raw, compresslevel=compresslevel))
    return hashlib.sha256(raw).hexdigest()


def tiny_arrays(n_train: int = 30, n_test: int = 10, seed: int = 0) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    return {
        "train_images": rng.integers(0, 256, size=(n_train, 28, 28), dtype=np.uint8),
        "train_labels": (np.arange(n_train) % 10).astype(np.uint8),
        "test_images": rng.integers(0, 256, size=(n_test, 28, 28), dtype=np.uint8),
        "test_labels": (np.arange(n_test)[::-1] % 10).astype(np.uint8),
    }


def write_mirror(root: Path, mirror_dir: str = "tiny", arrays: dict | None = None, compresslevel: int = 9) -> dict:
    """Write a mirror holding one tiny dataset; return its `datasets.<name>` params section."""
    arrays = arrays if arrays is not None else tiny_arrays()
    files = {}
    for role, name in FILE_NAMES.items():
        sha = write_idx_gz(root / mirror_dir / name, arrays[role], compresslevel)
        files[role] = {"name": name, "sha256": sha}
    return {"mirror_dir": mirror_dir, "sources": [], "files": files, "train_images": len(arrays["train_images"])}


def write_params(path: Path, dataset: dict, mirrors: list[str], preprocess: dict | None = None) -> Path:
    params = {
        "datasets": {"tiny": dataset},
        "fetch": {"mirrors": mirrors, "timeout_s": 5},
        "preprocess": preprocess or {},
    }
    path.write_text(yaml.safe_dump(params), encoding="utf-8")
    return path


PIPELINE_FIXTURES = {"smoke", "real_pipeline", "served_mirror"}


def pytest_collection_modifyitems(items):
    """A test that runs the real pipeline through DVC (it uses one of PIPELINE_FIXTURES, or says so
    with the marker) is marked `pipeline`: `python -m pytest -m "not pipeline"` runs the unit
    tests alone, in seconds."""
    for item in items:
        if PIPELINE_FIXTURES & set(getattr(item, "fixturenames", ())):
            item.add_marker(pytest.mark.pipeline)


@pytest.fixture
def no_env_mirror(monkeypatch):
    """Tests of the fetch logic must not pick up the developer's or CI's DATASET_MIRROR."""
    monkeypatch.delenv("DATASET_MIRROR", raising=False)


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args):
        pass


@pytest.fixture
def http_mirror(tmp_path):
    """Serve tmp_path/served on 127.0.0.1 at a free port; yield (directory, base URL)."""
    served = tmp_path / "served"
    served.mkdir()
    handler = functools.partial(_QuietHandler, directory=str(served))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield served, f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


def real_mirror() -> str:
    """The mirror of the real datasets the tests read, from DATASET_MIRROR.

    Without one, a developer's run skips the real-data tests; a CI run downloads the data
    from the public locations instead (a skipped check would pass silently)."""
    mirror = os.environ.get("DATASET_MIRROR", "").strip()
    if not mirror:
        if os.environ.get("CI"):
            return ""
        pytest.skip("set DATASET_MIRROR to a mirror of MNIST and Fashion-MNIST to run the real-data tests")
    return " ".join(str(Path(m).resolve()) if "://" not in m else m for m in mirror.split())


def copy_project(dest: Path, cache: Path | None = None, smoke: bool = False) -> Path:
    """A scratch copy of the pipeline as a fresh, committed git + DVC repo (tools/smoke.py)."""
    return make_project(dest, smoke=smoke, cache=cache)


def commit(project: Path, message: str) -> None:
    run(["git", "add", "-A"], project)
    run(["git", "-c", "user.name=test", "-c", "user.email=test@example.invalid", "commit", "-qm", message], project)


def command_env(env: dict | None = None) -> dict:
    """This process's environment plus `env`, with this interpreter's environment first on PATH
    (so dvc.yaml's `python` is the one with the project's dependencies)."""
    full_env = dict(os.environ, **(env or {}))
    full_env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{full_env.get('PATH', '')}"
    return full_env


def run(cmd: list[str], cwd: Path, env: dict | None = None, check: bool = True) -> subprocess.CompletedProcess:
    result = subprocess.run(cmd, cwd=cwd, env=command_env(env), capture_output=True, text=True)
    if check and result.returncode != 0:
        raise AssertionError(f"{cmd} failed ({result.returncode}):\n{result.stdout}\n{result.stderr}")
    return result


def dvc(args: list[str], cwd: Path, **kwargs) -> subprocess.CompletedProcess:
    return run([sys.executable, "-m", "dvc", *args], cwd, **kwargs)


def restore_committed(project: Path) -> None:
    """Put a test project back at its last commit: the git-tracked files (params, run folders,
    tables) and the DVC-cached outputs dvc.lock names (the models), which git does not hold."""
    run(["git", "checkout", "--", "."], project)
    dvc(["checkout", "--force"], project)


def _default_sigint() -> None:
    # A test suite started in the background (`cmd &` from a script) inherits SIGINT as ignored,
    # and so would dvc and its stages: give them the disposition a terminal's Ctrl-C meets.
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def start_dvc(args: list[str], cwd: Path, env: dict | None = None) -> subprocess.Popen:
    """Start a dvc command in a process group of its own, so a test can signal all of it."""
    return subprocess.Popen(
        [sys.executable, "-m", "dvc", *args],
        cwd=cwd,
        env=command_env(env),
        preexec_fn=_default_sigint,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,
    )


def wait_for_group(proc: subprocess.Popen, timeout: float = 120) -> None:
    """Wait until every process of `proc`'s group (start_dvc's) has ended, not only dvc: a stage may still be
    removing its temporary files after dvc exits."""
    deadline = time.monotonic() + timeout
    proc.wait(timeout=timeout)
    while time.monotonic() < deadline:
        if not group_members(proc.pid):
            return
        time.sleep(0.2)
    raise AssertionError(f"group {proc.pid}: {group_members(proc.pid)} still running {timeout} s after the signal")


def group_members(pgid: int) -> list[int]:
    """The live processes of a process group (Linux's /proc; a zombie, ended but not yet reaped, is not live)."""
    found = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            state, _, group = stat.read_text().rpartition(")")[2].split()[:3]
        except OSError:  # ended while we looked
            continue
        if int(group) == pgid and state != "Z":
            found.append(int(stat.parent.name))
    return found


def wait_for_training(
    proc: subprocess.Popen, units: int, pattern: str = r"Running stage '(fashion_cv@[^']+)'"
) -> list[str]:
    """Read DVC's output until the `units`-th stage matching `pattern` is inside its second
    epoch; return the stages started so far."""
    started, deadline = [], time.monotonic() + 300
    while time.monotonic() < deadline:
        line = proc.stdout.readline()
        if not line and proc.poll() is not None:
            break
        if match := re.match(pattern, line):
            started.append(match.group(1))
        if len(started) == units and line.startswith("Epoch 2/"):
            return started
    raise AssertionError(f"never reached training of unit {units}: {started}")


@pytest.fixture(scope="session")
def dvc_cache(tmp_path_factory):
    return tmp_path_factory.mktemp("dvc-cache")


@pytest.fixture(scope="session")
def real_pipeline(tmp_path_factory):
    """fetch, preprocess and noise of the real datasets through `dvc repro`, once per test session,
    with a cache of its own so every stage really runs (not restored from the run-cache)."""
    mirror = real_mirror()
    project = copy_project(tmp_path_factory.mktemp("project"))
    first = dvc(["repro", "preprocess", "noise"], project, env={"DATASET_MIRROR": mirror})
    second = dvc(["repro", "preprocess", "noise"], project, env={"DATASET_MIRROR": mirror})
    params = yaml.safe_load((project / "params.yaml").read_text())
    return {"path": project, "first": first, "second": second, "params": copy.deepcopy(params)}


@pytest.fixture(scope="session")
def served_mirror():
    """The real mirror served over HTTP on 127.0.0.1, as a machine without ../shared meets the
    datasets (a base URL; the public locations are base URLs too); "" where there is none."""
    mirror = real_mirror()
    if not mirror or "://" in mirror or len(mirror.split()) > 1:
        yield mirror
        return
    handler = functools.partial(_QuietHandler, directory=mirror)
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


@pytest.fixture(scope="session")
def smoke(tmp_path_factory, dvc_cache, served_mirror):
    """The README's quick look (`python -m tools.smoke DIR && cd DIR && dvc repro`), committed,
    once per session, with the datasets fetched over HTTP: no local copy of them is named."""
    project = copy_project(tmp_path_factory.mktemp("smoke"), dvc_cache, smoke=True)
    params = yaml.safe_load((project / "params.yaml").read_text())
    env = {"DATASET_MIRROR": served_mirror}
    first = dvc(["repro"], project, env=env)
    commit(project, "smoke run")
    return {"path": project, "params": params, "first": first, "env": env}
