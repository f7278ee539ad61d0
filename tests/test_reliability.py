"""Reliability: bad params are refused before any work, interrupted runs resume without losing
or faking anything, reruns are byte-identical, a second `dvc repro` is locked out, queued
experiments match sequential ones, and a corrupted raw file never reaches training.

The pipeline tests share the smoke project (conftest's `smoke`) and put it back as they found it.
"""

from __future__ import annotations

import contextlib
import copy
import importlib
import json
import os
import re
import shlex
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import yaml

from lib.common.core import ConfigError, load_yaml
from lib.common.paths import fashion_cv_seed, mnist_tips_run
from tests.conftest import ROOT, command_env, dvc, restore_committed, start_dvc, wait_for_group, wait_for_training
from tools.timing import ran_stages

# ---------------------------------------------------------------------------------------------
# Params validation through the stage entry points

REAL_PARAMS = yaml.safe_load((ROOT / "params.yaml").read_text())


def tiny_npz(path: Path, kind: str, n_train: int = 50, n_test: int = 20) -> Path:
    """Small arrays in the layout of a prepared file: `tips` (784-vectors, one-hot labels),
    `dense` (28 x 28, integer labels) or `cnn` (28 x 28 x 1)."""
    rng = np.random.default_rng(0)
    shape = {"tips": (784,), "dense": (28, 28), "cnn": (28, 28, 1)}[kind]
    arrays = {}
    for split, n in (("train", n_train), ("test", n_test)):
        arrays[f"x_{split}"] = rng.random((n, *shape), dtype=np.float32)
        labels = np.arange(n) % 10
        arrays[f"y_{split}"] = np.eye(10, dtype=np.float32)[labels] if kind == "tips" else labels.astype(np.int64)
    np.savez(path, **arrays)
    return path


def set_key(params: dict, dotted: str, value) -> dict:
    params = copy.deepcopy(params)
    *parents, last = dotted.split(".")
    node = params
    for key in parents:
        node = node[key]
    node[last] = value
    return params


def unit_argv(tmp: Path, stage: str, kind: str, npz: str) -> list[str]:
    """A unit's command line as a test runs it: its stage name, a tiny prepared file of `kind`, a scratch run folder."""
    return ["--stage", stage, "--data", str(tiny_npz(tmp / npz, kind)), "--out", str(tmp / "out" / "run")]


def tips_argv(tmp: Path, variant: str = "deep_relu") -> list[str]:
    return unit_argv(tmp, f"mnist_tips@{variant}-0", "tips", "mnist_tips.npz")


def cv_argv(tmp: Path, variant: str = "dense64") -> list[str]:
    return unit_argv(tmp, f"fashion_cv@{variant}-0", "dense", "dense.npz")


def final_argv(tmp: Path) -> list[str]:
    return unit_argv(tmp, "fashion_final@0", "dense", "dense.npz")


def cnn_argv(tmp: Path) -> list[str]:
    return unit_argv(tmp, "fashion_cnn@0", "cnn", "cnn.npz")


def fashion_table_argv(tmp: Path) -> list[str]:
    out = tmp / "out"
    return [
        "--runs",
        str(tmp / "runs"),
        "--reference",
        str(ROOT / "reference/fashion.yaml"),
        "--claims",
        str(ROOT / "claims.yaml"),
        "--metrics",
        str(out / "m.json"),
        "--table",
        str(out / "t.md"),
        "--figures",
        str(out / "fig"),
        "--curves",
        str(out / "c.csv"),
        "--predictions",
        str(out / "p"),
        "--warnings",
        str(out / "w.csv"),
    ]


def tips_table_argv(tmp: Path) -> list[str]:
    out = tmp / "out"
    return [
        "--runs",
        str(tmp / "runs"),
        "--reference",
        str(ROOT / "reference/mnist_tips.yaml"),
        "--claims",
        str(ROOT / "claims.yaml"),
        "--metrics",
        str(out / "m.json"),
        "--table",
        str(out / "t.md"),
        "--curves",
        str(out / "c.csv"),
    ]


def noise_argv(tmp: Path) -> list[str]:
    return [
        "--stage",
        "noise@0",
        "--data",
        str(tiny_npz(tmp / "mnist_tips.npz", "tips")),
        "--out",
        str(tmp / "out" / "noisy.npz"),
    ]


BAD_PARAMS = [
    # (case id, stage module, argv builder, dotted key, bad value, text naming what is allowed)
    (
        "unknown key",
        "mnist_tips",
        tips_argv,
        "mnist_tips.variants.deep_relu.learnin_rate",
        0.1,
        "unknown key(s) learnin_rate; allowed: hidden_units",
    ),
    (
        "epochs as a string",
        "mnist_tips",
        tips_argv,
        "mnist_tips.variants.deep_relu.epochs",
        "20",
        "'20' is not allowed; allowed: an integer",
    ),
    (
        "dropout 1",
        "mnist_tips",
        tips_argv,
        "mnist_tips.variants.deep_relu.dropout_rate",
        1.0,
        "1.0 is not allowed; allowed: 0 <= dropout_rate < 1",
    ),
    (
        "dropout negative",
        "mnist_tips",
        tips_argv,
        "mnist_tips.variants.deep_relu.dropout_rate",
        -0.1,
        "-0.1 is not allowed; allowed: 0 <= dropout_rate < 1",
    ),
    (
        "epochs 0",
        "mnist_tips",
        tips_argv,
        "mnist_tips.variants.deep_relu.epochs",
        0,
        "0 is not allowed; allowed: an integer from 1 to",
    ),
    (
        "batch 0",
        "mnist_tips",
        tips_argv,
        "mnist_tips.variants.deep_relu.batch_size",
        0,
        "0 is not allowed; allowed: an integer from 1 to",
    ),
    (
        "batch above the data",
        "mnist_tips",
        tips_argv,
        "mnist_tips.variants.deep_relu.batch_size",
        51,
        "51 is not allowed; allowed: at most 50, the training images of mnist_tips.npz",
    ),
    (
        "unknown activation",
        "mnist_tips",
        tips_argv,
        "mnist_tips.variants.deep_relu.activation",
        "swish",
        "'swish' is not allowed; allowed: relu, sigmoid, tanh",
    ),
    (
        "unknown loss",
        "mnist_tips",
        tips_argv,
        "mnist_tips.variants.deep_relu.loss",
        "hinge",
        "'hinge' is not allowed; allowed: mse, categorical_crossentropy",
    ),
    (
        "unknown optimizer",
        "mnist_tips",
        tips_argv,
        "mnist_tips.variants.deep_relu.optimizer",
        "adagrad",
        "'adagrad' is not allowed; allowed: sgd, adam, rmsprop",
    ),
    (
        "learning rate 0",
        "mnist_tips",
        tips_argv,
        "mnist_tips.variants.deep_relu.learning_rate",
        0,
        "0 is not allowed; allowed: a number > 0",
    ),
    (
        "no hidden layer",
        "mnist_tips",
        tips_argv,
        "mnist_tips.variants.deep_relu.hidden_units",
        [],
        "[] is not allowed; allowed: a list of 1 to 100 integers from 1 to 100000",
    ),
    ("k 1", "fashion_cv", cv_argv, "fashion.cross_validation.k", 1, "1 is not allowed; allowed: an integer from 2 to"),
    (
        "L2 negative",
        "fashion_cv",
        cv_argv,
        "fashion.variants.dense64.l2",
        -0.001,
        "-0.001 is not allowed; allowed: a number >= 0",
    ),
    (
        "dropout 1.5",
        "fashion_cv",
        cv_argv,
        "fashion.variants.dense64.dropout_rate",
        1.5,
        "1.5 is not allowed; allowed: 0 <= dropout_rate < 1",
    ),
    (
        "batch above a fold",
        "fashion_cv",
        cv_argv,
        "fashion.training.batch_size",
        128,
        "128 is not allowed; allowed: at most 40, the images a fold trains on",
    ),
    (
        "training optimizer",
        "fashion_cv",
        cv_argv,
        "fashion.training.optimizer",
        "adagrad",
        "'adagrad' is not allowed; allowed: sgd, adam, rmsprop",
    ),
    (
        "training epochs 0",
        "fashion_cv",
        cv_argv,
        "fashion.training.epochs",
        0,
        "0 is not allowed; allowed: an integer from 1 to",
    ),
    (
        "unknown cross-validation key",
        "fashion_cv",
        cv_argv,
        "fashion.cross_validation.folds",
        [0, 5],
        "unknown key(s) folds; allowed: k",
    ),
    (
        "unknown backend",
        "fashion_cv",
        cv_argv,
        "training.backend",
        "torch",
        "'torch' is not allowed; allowed: tensorflow, jax",
    ),
    (
        "final batch above the data",
        "fashion_final",
        final_argv,
        "fashion.training.batch_size",
        128,
        "128 is not allowed; allowed: at most 50, the images the final model trains on",
    ),
    (
        "final epochs 0",
        "fashion_final",
        final_argv,
        "fashion.final.epochs",
        0,
        "0 is not allowed; allowed: an integer from 1 to",
    ),
    (
        "cnn dropout 1",
        "fashion_cnn",
        cnn_argv,
        "fashion.cnn.dropout_rate",
        1.0,
        "1.0 is not allowed; allowed: 0 <= dropout_rate < 1",
    ),
    (
        "cnn batch above the data",
        "fashion_cnn",
        cnn_argv,
        "fashion.training.batch_size",
        64,
        "64 is not allowed; allowed: at most 50, the images the CNN trains on",
    ),
    (
        "fashion seeds empty",
        "fashion_table",
        fashion_table_argv,
        "fashion.seeds",
        [],
        "[] is not allowed; allowed: a non-empty list of distinct integers",
    ),
    (
        "fashion seeds repeated",
        "fashion_table",
        fashion_table_argv,
        "fashion.seeds",
        [0, 0],
        "[0, 0] is not allowed; allowed: a non-empty list of distinct integers",
    ),
    (
        "mnist seeds empty",
        "mnist_tips_table",
        tips_table_argv,
        "mnist_tips.seeds",
        [],
        "[] is not allowed; allowed: a non-empty list of distinct integers",
    ),
    # A table with no rows: refused before anything is written (it used to write {} and then crash).
    (
        "mnist variants empty",
        "mnist_tips_table",
        tips_table_argv,
        "mnist_tips.variants",
        {},
        "{} is not allowed; allowed: at least one variant",
    ),
    (
        "fashion variants empty",
        "fashion_table",
        fashion_table_argv,
        "fashion.variants",
        {},
        "{} is not allowed; allowed: at least one variant",
    ),
    (
        "noise std negative",
        "noise",
        noise_argv,
        "mnist_tips.noise.test_std",
        -1.0,
        "-1.0 is not allowed; allowed: a number >= 0",
    ),
    (
        "noise source unknown",
        "noise",
        noise_argv,
        "mnist_tips.noise.source",
        "mnist",
        "'mnist' is not allowed; allowed: 'mnist_tips', the file --data names",
    ),
]


@pytest.mark.parametrize(
    "module, argv, key, value, allowed", [case[1:] for case in BAD_PARAMS], ids=[case[0] for case in BAD_PARAMS]
)
def test_bad_params_are_refused_before_any_work(tmp_path, module, argv, key, value, allowed):
    params = tmp_path / "params.yaml"
    params.write_text(yaml.safe_dump(set_key(REAL_PARAMS, key, value), sort_keys=False))
    args = argv(tmp_path) + ["--params", str(params)]
    (tmp_path / "out").mkdir()
    with pytest.raises(ConfigError) as err:
        importlib.import_module(f"stages.{module}").main(args)
    message = str(err.value)
    # One error naming the key (its dotted path), the bad value and what is allowed.
    section, _, leaf = key.rpartition(".")
    assert leaf in message and allowed in message and message.startswith(section), message
    assert list((tmp_path / "out").iterdir()) == [], "a refused run wrote something"


def test_bad_params_table_is_large_enough():
    assert len(BAD_PARAMS) >= 15 and len({case[3] for case in BAD_PARAMS}) >= 15


def test_run_guard_names_what_changed_since_the_run_began(tmp_path):
    from lib.results.guards import check_unchanged_since_start, differences

    started = {
        "fashion": {"training": {"epochs": 40, "learning_rate": 0.001}, "seeds": [0, 1]},
        "fetch": {"timeout_s": 300},
    }
    now = copy.deepcopy(started)
    now["fashion"]["training"]["learning_rate"] = 1e-06
    now["fashion"]["seeds"].append(2)
    del now["fetch"]
    now["extra"] = 1
    assert differences(started, started) == []
    assert differences(started, now) == [
        "extra: added (1)",
        "fashion.seeds: [0, 1] -> [0, 1, 2]",
        "fashion.training.learning_rate: 0.001 -> 1e-06",
        "fetch: removed (was {'timeout_s': 300})",
    ]
    params, lock = tmp_path / "params.yaml", tmp_path / "dvc.lock"
    # What DVC writes: `-S lr=1e-6` becomes 1e-06, a float to DVC and to the guard alike.
    params.write_text("fashion:\n  training: {epochs: 40, learning_rate: 1e-06}\n")
    lock.write_text(
        "schema: '2.0'\nstages:\n  check_params:\n    params:\n      params.yaml:\n"
        "        fashion:\n          training:\n            epochs: 40\n            learning_rate: 1e-06\n"
    )
    check_unchanged_since_start(params, lock)  # same values: passes
    params.write_text("fashion:\n  training: {epochs: 41, learning_rate: 1e-06}\n")
    with pytest.raises(ConfigError, match=r"changed while this run was going \(fashion.training.epochs: 40 -> 41\)"):
        check_unchanged_since_start(params, lock)
    lock.write_text("schema: '2.0'\nstages: {}\n")
    with pytest.raises(ConfigError, match="no record of the check_params stage"):
        check_unchanged_since_start(params, lock)


def test_the_run_guard_reads_dvc_lock_whole_while_dvc_rewrites_it(tmp_path):
    """Parallel `dvc repro` processes rewrite dvc.lock in place (truncate, then write) as each stage ends:
    a table's guard reading it meanwhile must wait for a whole file, not refuse ("no record of the
    check_params stage") on one cut short, as it once did after an interrupted run_parallel."""
    import threading

    from lib.common.core import load_yaml
    from lib.results.guards import check_unchanged_since_start

    params = tmp_path / "params.yaml"
    params.write_text("a: 1\n")
    lock = tmp_path / "dvc.lock"
    stages = {"check_params": {"params": {"params.yaml": {"a": 1}}}}
    stages.update({f"unit@{i}": {"cmd": "python -m stages.unit", "outs": [{"md5": "0" * 32}]} for i in range(400)})
    text = yaml.safe_dump({"schema": "2.0", "stages": stages}, sort_keys=False)
    lock.write_text(text)
    stop = threading.Event()

    def writer():  # as DVC: open("w") truncates, the text follows in pieces, then a pause until the next stage
        while not stop.is_set():
            with open(lock, "w") as stream:
                for start in range(0, len(text), 8192):
                    stream.write(text[start : start + 8192])
                    stream.flush()
                    time.sleep(0.002)
            time.sleep(0.1)

    thread = threading.Thread(target=writer, daemon=True)
    thread.start()
    naive, refused = 0, []
    try:
        for _ in range(25):
            data = None
            with contextlib.suppress(Exception):
                data = load_yaml(lock)
            naive += not (isinstance(data, dict) and "check_params" in (data.get("stages") or {}))
            try:
                check_unchanged_since_start(params, lock)
            except ConfigError as error:
                refused.append(str(error))
            time.sleep(0.013)
    finally:
        stop.set()
        thread.join()
    assert naive > 0, "the writer never caught a reader mid-write: the test exercises nothing"
    assert refused == []


def test_run_guard_refuses_a_unit_trained_with_other_params(tmp_path):
    from lib.results.guards import check_trained_with

    (tmp_path / "config.json").write_text(
        json.dumps({"hidden_units": [64], "dropout_rate": 0.0, "learning_rate": 0.001, "seed": 0})
    )
    check_trained_with(
        tmp_path, {"hidden_units": [64], "dropout_rate": 0, "learning_rate": 0.001}, "fashion_cv@dense64-0-0"
    )
    with pytest.raises(ConfigError) as refused:
        check_trained_with(tmp_path, {"hidden_units": [64, 64], "l2": 0.001}, "fashion_cv@dense64-0-0")
    assert str(refused.value).startswith(
        f"{tmp_path} was trained with hidden_units=[64] (params.yaml: [64, 64]), l2='missing' (params.yaml: 0.001)"
    )
    assert "`dvc repro --force --single-item fashion_cv@dense64-0-0`" in str(refused.value)


def test_a_table_refuses_units_from_two_keras_backends():
    from lib.results.guards import check_one_backend

    assert check_one_backend({"a": {"backend": "jax"}, "b": {"backend": "jax"}}) == "jax"
    units = {
        "mnist_tips@deep_relu-0": {"backend": "tensorflow"},
        "mnist_tips@deep_relu-1": {"backend": "jax"},
        "mnist_tips@deep_relu-2": {"backend": "jax"},
        "mnist_tips@adam-0": {"backend": "jax"},
        "mnist_tips@adam-1": {},
    }
    with pytest.raises(ConfigError) as refused:
        check_one_backend(units)
    assert str(refused.value).startswith(
        "the units of this table trained on different Keras backends "
        "(jax: 3 (mnist_tips@deep_relu-1, mnist_tips@deep_relu-2, ...); "
        "not recorded: 1 (mnist_tips@adam-1); tensorflow: 1 (mnist_tips@deep_relu-0)); nothing was published."
    )


def test_command_line_refusal_is_one_line_and_exit_1(tmp_path):
    params = tmp_path / "params.yaml"
    params.write_text(yaml.safe_dump(set_key(REAL_PARAMS, "fashion.variants.dense64.l2", -1), sort_keys=False))
    result = subprocess.run(
        [sys.executable, "-m", "stages.fashion_cv", *cv_argv(tmp_path), "--params", str(params)],
        cwd=ROOT,
        capture_output=True,
        text=True,
    )
    assert result.returncode == 1
    assert (
        result.stderr.strip().splitlines()[-1]
        == "error: fashion.variants.dense64.l2: -1 is not allowed; allowed: a number >= 0"
    )
    assert "Traceback" not in result.stderr
    assert not (tmp_path / "out").exists()


# ---------------------------------------------------------------------------------------------
# The pipeline under faults, on the smoke project


def _snapshot(root: Path) -> dict[str, bytes]:
    """Every result file under `root` (metrics, histories, configs, dvclive curves), as bytes."""
    return {
        str(p.relative_to(root)): p.read_bytes()
        for p in sorted(root.rglob("*"))
        if p.is_file() and ".tmp" not in str(p)
    }


def _unit_dir(project: Path, stage: str) -> Path:
    """A `fashion_cv@<variant>-<seed>` unit's folder (its fold folders inside)."""
    variant, seed = stage.split("@")[1].rsplit("-", 1)
    return project / fashion_cv_seed(variant, int(seed))


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGKILL], ids=["SIGINT", "SIGKILL"])
def test_interrupted_repro_keeps_the_committed_results_and_resumes(smoke, sig):
    """Kill `dvc repro --force` (its whole process group, as Ctrl-C or an OOM kill would) while the
    second training unit trains: the killed unit's committed run folder and its dvc.lock entry stay
    as they were (its outputs persist, and the unit replaces them only when it succeeds); the
    finished unit was rewritten with the same bytes; nothing is left to rerun, and a forced rerun
    of the killed unit gives the committed bytes again."""
    project, env = smoke["path"], smoke["env"]
    units = ["fashion_cv@dense64-0", "fashion_cv@dense64-1"]
    uninterrupted = {unit: _snapshot(_unit_dir(project, unit)) for unit in units}
    lock = (project / "dvc.lock").read_bytes()
    try:
        proc = start_dvc(["repro", "--force", "--single-item", *units], project, env)
        try:
            # Keras prints (and flushes) "Epoch 2/24" as the epoch starts: the signal lands with
            # 23 of the unit's 24 epochs to go.
            finished, killed = wait_for_training(proc, 2)
        finally:
            os.killpg(proc.pid, sig)
            wait_for_group(proc)  # the unit too, which removes its temporary after dvc has exited
        assert proc.returncode != 0
        assert [finished, killed] == units
        assert {unit: _snapshot(_unit_dir(project, unit)) for unit in units} == uninterrupted
        assert (project / "dvc.lock").read_bytes() == lock
        leftovers = list((project / "reports/runs/fashion/cv").rglob("*.tmp"))
        # A Ctrl-C lets the unit remove its temporary; after a SIGKILL it stays, beside the outputs,
        # ignored by git and DVC, until the unit next runs.
        assert not leftovers if sig == signal.SIGINT else len(leftovers) <= 1, leftovers
        assert "up to date" in dvc(["status"], project).stdout
        resumed = dvc(["repro", "--single-item", *units], project, env=env).stdout
        assert (
            f"Stage '{finished}' didn't change, skipping" in resumed
            and f"Stage '{killed}' didn't change, skipping" in resumed
        )
        rerun = dvc(["repro", "--force", "--single-item", killed], project, env=env).stdout
        assert f"Running stage '{killed}'" in rerun
        assert {unit: _snapshot(_unit_dir(project, unit)) for unit in units} == uninterrupted
        assert (project / "dvc.lock").read_bytes() == lock
        assert not list((project / "reports/runs/fashion/cv").rglob("*.tmp")), "the rerun left a temporary behind"
    finally:
        restore_committed(project)
    assert "up to date" in dvc(["status"], project).stdout


def test_a_stage_dies_with_its_dvc_and_a_rerun_stays_the_result(smoke):
    """SIGTERM to the dvc process alone (a CI runner or a job scheduler cancelling the job) used
    to leave the stage training as an orphan, which later wrote over the user's rerun. The stage
    now ends with its dvc, and the rerun's result is the one that stays.

    SHELL is /bin/sh, as where it is unset (many CI runners): dvc runs the command through it,
    and dash, unlike bash, does not exec the command, so the stage's parent is a shell that
    outlives dvc (how this test once passed here, under bash, and failed in CI)."""
    import psutil

    project, env = smoke["path"], {**smoke["env"], "SHELL": "/bin/sh"}
    unit = "fashion_cv@dense64-0"
    params = (project / "params.yaml").read_text()
    assert "epochs: 24" in params
    (project / "params.yaml").write_text(
        params.replace("epochs: 24", "epochs: 5000", 1)
    )  # far longer than the test waits
    stage_processes = []
    try:
        proc = start_dvc(["repro", "--force", "--single-item", unit], project, env)
        try:
            wait_for_training(proc, 1)
            stage_processes = [
                p
                for p in psutil.Process(proc.pid).children(recursive=True)
                if "stages.fashion_cv" in " ".join(p.cmdline())
            ]
            assert stage_processes, "no stage process found under dvc"
            os.kill(proc.pid, signal.SIGTERM)  # dvc alone, not its process group
            proc.wait(timeout=60)
            _, alive = psutil.wait_procs(stage_processes, timeout=30)
            assert not alive, "the stage trains on after its dvc was cancelled"
        finally:
            for leftover in stage_processes:
                if leftover.is_running():
                    leftover.kill()
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()
        (project / "params.yaml").write_text(params.replace("epochs: 24", "epochs: 5", 1))
        dvc(["repro", "--single-item", unit], project, env=env)
        time.sleep(2)  # time for an orphan, were there one, to write
        config = json.loads((_unit_dir(project, unit) / "fold0" / "config.json").read_text())
        assert config["epochs"] == 5  # the rerun's result, not the cancelled run's
        assert "up to date" in dvc(["status", unit], project).stdout
    finally:
        restore_committed(project)
    assert "up to date" in dvc(["status"], project).stdout


def _set(params: str, mutate) -> str:
    changed = yaml.safe_load(params)
    mutate(changed)
    return yaml.safe_dump(changed, sort_keys=False)


def _name_with_commands(p):
    p["mnist_tips"]["variants"]["adam;touch PWNED;x"] = dict(p["mnist_tips"]["variants"]["deep_relu"])
    p["mnist_tips"]["data"]["mnist_tips"].append("adam;touch PWNED;x")


BAD_PIPELINE_PARAMS = [
    (
        "a misspelled section",
        lambda p: p.update(fashon={"seeds": [0]}),
        "error: params: unknown key(s) fashon; allowed: profile, datasets, fetch, preprocess, training, mnist_tips, "
        "fashion",
    ),
    (
        "seed beside seeds",
        lambda p: p["fashion"].update(seed=[3]),
        "error: fashion: unknown key(s) seed; allowed: seeds, training,",
    ),
    (
        "a variant name with shell commands",
        _name_with_commands,
        "error: mnist_tips.variants: the name 'adam;touch PWNED;x' is not allowed; allowed: letters, digits and _",
    ),
    (
        "a variant name with a space",
        lambda p: p["fashion"]["variants"].update({"dense 64": {"hidden_units": [8]}}),
        "error: fashion.variants: the name 'dense 64' is not allowed",
    ),
    (
        "an impossible value",
        lambda p: p["fashion"]["variants"]["dense64"].update(l2=-1),
        "error: fashion.variants.dense64.l2: -1 is not allowed; allowed: a number >= 0",
    ),
    # Values the units refuse, refused before them (each used to cost the unit's committed results).
    (
        "a batch larger than the data",
        lambda p: p["mnist_tips"]["variants"]["deep_relu"].update(batch_size=20000),
        "error: mnist_tips.variants.deep_relu.batch_size: 20000 is not allowed; allowed: at most 10000, "
        "the training images of mnist_tips.npz",
    ),
    (
        "a negative seed",
        lambda p: p["mnist_tips"].update(seeds=[-1]),
        "error: mnist_tips.seeds: [-1] is not allowed; allowed: a non-empty list of distinct integers from 0 to",
    ),
    (
        "a seed numpy cannot take",
        lambda p: p["fashion"].update(seeds=[2**40]),
        "error: fashion.seeds: [1099511627776] is not allowed",
    ),
    (
        "a 300-character name",
        lambda p: p["fashion"]["variants"].update({"d" * 300: {"hidden_units": [8]}}),
        "(300 characters) is not allowed; allowed: letters, digits and _, starting with a letter, at most 64",
    ),
    (
        "a billion epochs",
        lambda p: p["fashion"]["training"].update(epochs=10**9),
        "error: fashion.training.epochs: 1000000000 is not allowed; allowed: an integer from 1 to 10000",
    ),
]


@pytest.mark.parametrize(
    "mutate, message", [case[1:] for case in BAD_PIPELINE_PARAMS], ids=[case[0] for case in BAD_PIPELINE_PARAMS]
)
def test_bad_params_stop_the_pipeline_before_any_result_is_touched(smoke, mutate, message):
    """The params check runs before every other stage: one line naming the key, no stage run, no
    earlier result removed (DVC removes a stage's outputs before running it), no shell command."""
    project, env = smoke["path"], smoke["env"]
    params = (project / "params.yaml").read_text()
    before = _snapshot(project / "reports")
    try:
        (project / "params.yaml").write_text(_set(params, mutate))
        result = dvc(["repro"], project, env=env, check=False)
    finally:
        (project / "params.yaml").write_text(params)
    output = result.stdout + result.stderr
    assert result.returncode != 0 and message in output, output
    assert ran_stages(output) == ["check_params"], output
    assert _snapshot(project / "reports") == before
    assert not list(project.rglob("PWNED"))
    assert "up to date" in dvc(["status"], project).stdout


@pytest.mark.parametrize(
    "setting, message",
    [
        (
            "fashion.training.epochs=0",
            "error: fashion.training.epochs: 0 is not allowed; allowed: an integer from 1 to",
        ),
        (
            "mnist_tips.variants.deep_relu.batch_size=20000",
            "error: mnist_tips.variants.deep_relu.batch_size: 20000 is not allowed; allowed: at most 10000",
        ),
    ],
    ids=["epochs 0", "a batch larger than the data"],
)
def test_a_refused_experiment_value_costs_nothing(smoke, setting, message):
    """`dvc exp run -S` with an impossible value: refused by the params check, every earlier result
    and model kept (a batch larger than the data used to be refused by the unit only, after DVC had
    deleted its run folder and model)."""
    project, env = smoke["path"], smoke["env"]
    before = _snapshot(project / "reports"), _snapshot(project / "models")
    params = (project / "params.yaml").read_text()
    try:
        result = dvc(["exp", "run", "-S", setting], project, env=env, check=False)
    finally:
        (project / "params.yaml").write_text(params)
    assert result.returncode != 0
    assert message in result.stdout + result.stderr
    assert ran_stages(result.stdout) == ["check_params"], result.stdout
    assert (_snapshot(project / "reports"), _snapshot(project / "models")) == before
    assert "up to date" in dvc(["status"], project).stdout


def _seed_with_commands(p):
    p["mnist_tips"]["seeds"].append("0;touch PWNED")


@pytest.mark.parametrize(
    "mutate, stage, message",
    [
        (
            _name_with_commands,
            "mnist_tips@adam;touch PWNED;x-0",
            "error: stage 'mnist_tips@adam;touch PWNED;x-0': the name 'adam;touch PWNED;x' is not allowed",
        ),
        (
            _seed_with_commands,
            "noise@0;touch PWNED",
            "error: mnist_tips.seeds: the seed '0;touch PWNED' is not allowed",
        ),
    ],
    ids=["a variant name", "a seed"],
)
def test_no_value_of_params_reaches_a_shell_even_past_the_params_check(smoke, mutate, stage, message):
    """`dvc repro --single-item` runs one stage without the params check: its command must still not
    carry a name into a shell. No command holds a templated value; the stage reads its name (DVC_STAGE)
    and refuses it."""
    project, env = smoke["path"], smoke["env"]
    params = (project / "params.yaml").read_text()
    before = _snapshot(project / "reports")
    try:
        (project / "params.yaml").write_text(_set(params, mutate))
        result = dvc(["repro", "--single-item", stage], project, env=env, check=False)
    finally:
        (project / "params.yaml").write_text(params)
    output = result.stdout + result.stderr
    assert result.returncode != 0 and message in output, output
    assert not list(project.rglob("PWNED")) and not Path("PWNED").exists()
    assert _snapshot(project / "reports") == before
    assert "up to date" in dvc(["status"], project).stdout


def test_an_empty_mapping_given_with_set_param_changes_nothing(smoke):
    """DVC merges a mapping given with `-S` into the one in params.yaml, so `-S 'mnist_tips.variants={}'`
    removes no variant: params.yaml is unchanged and nothing runs (README, "Bad input"). To remove a
    variant, edit params.yaml."""
    project, env = smoke["path"], smoke["env"]
    params = (project / "params.yaml").read_text()
    try:
        result = dvc(["exp", "run", "-S", "mnist_tips.variants={}"], project, env=env, check=False)
        assert (project / "params.yaml").read_text() == params
        assert result.returncode == 0 and ran_stages(result.stdout) == [], result.stdout
    finally:
        (project / "params.yaml").write_text(params)
        dvc(["exp", "remove", "--all-commits"], project, check=False)
    assert "up to date" in dvc(["status"], project).stdout


def test_a_failed_fetch_keeps_the_last_verified_copy(smoke):
    """No mirror and no network: the fetch stage fails, saying that no mirror was named, and the data it
    fetched before stays (its output persists; DVC used to delete it before running the stage)."""
    import socket

    project, env = smoke["path"], smoke["env"]
    raw = project / "data/raw/mnist"
    before = _snapshot(raw)
    params = (project / "params.yaml").read_text()
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        closed = sock.getsockname()[1]

    def offline(p):
        p["datasets"]["mnist"]["sources"] = [f"http://127.0.0.1:{closed}"]
        p["fetch"]["mirrors"] = []

    try:
        (project / "params.yaml").write_text(_set(params, offline))
        result = dvc(["repro", "fetch@mnist"], project, env={**env, "DATASET_MIRROR": ""}, check=False)
        after = _snapshot(raw)
    finally:
        restore_committed(project)  # params.yaml, and check_params's dvc.lock entry (it ran, and passed)
    output = result.stdout + result.stderr
    assert result.returncode != 0 and "no mirror was named (DATASET_MIRROR is not set" in output, output
    assert before and after == before
    assert "up to date" in dvc(["status"], project).stdout


def test_second_repro_is_locked_out_and_corrupts_nothing(smoke):
    project = smoke["path"]
    before = _snapshot(project / "reports")
    # Two units of two folds each: the first repro holds them for about 30 s after the first one
    # starts training, several times what the second takes to reach the first of them.
    units = [f"fashion_cv@dense64-{seed}" for seed in (0, 1)]
    proc = start_dvc(["repro", "--force", "--single-item", *units], smoke["path"], smoke["env"])
    try:
        wait_for_training(proc, 1)
        started = time.monotonic()
        second = dvc(["repro"], project, env=smoke["env"], check=False)
        waited = time.monotonic() - started
        assert proc.poll() is None, "the first repro ended before the second one met its lock"
    finally:
        rest = proc.communicate(timeout=600)[0]
    # DVC 3 locks per path: the second repro gets as far as the first stage whose data the
    # first one holds, refuses it naming the holder, and has run nothing.
    assert second.returncode != 0
    assert (
        "is busy, it is being blocked by" in second.stderr
        and f"repro --force --single-item {units[0]}" in second.stderr
    ), second.stderr
    assert "Running stage" not in second.stdout
    assert waited < 30, f"the second repro took {waited:.0f} s to give up"
    assert proc.returncode == 0, rest
    assert "up to date" in dvc(["status"], project).stdout
    assert _snapshot(project / "reports") == before


def _experiment_metrics(project: Path) -> dict[str, dict]:
    """name -> the MNIST table's summary (reports/mnist_tips/metrics.json, every figure) at every experiment
    `dvc exp show` lists, read from the experiment's commit."""
    shown = json.loads(dvc(["exp", "show", "--json"], project).stdout)
    found = {}
    for rev in shown:
        for exp in rev.get("experiments") or []:
            commit = exp["revs"][0]["rev"]
            text = subprocess.run(
                ["git", "show", f"{commit}:reports/mnist_tips/metrics.json"],
                cwd=project,
                capture_output=True,
                text=True,
                check=True,
            ).stdout
            found[exp.get("name") or exp["revs"][0].get("name")] = json.loads(text)
    return found


def test_queued_experiments_in_parallel_match_sequential_runs(smoke):
    """Two experiments queued and run side by side (`dvc queue start -j 2`) give the metrics of
    the same two run one after the other with --temp; each reruns only its variant's units; the
    README's `dvc exp show` line shows their headline figures in 120 columns."""
    project, env = smoke["path"], smoke["env"]
    changes = {
        "par-unscaled": "mnist_tips.variants.unscaled.epochs=1",
        "par-relu": "mnist_tips.variants.deep_relu.learning_rate=0.05",
    }
    try:
        for name, change in changes.items():
            dvc(["exp", "run", "--queue", "--name", name, "-S", change], project, env=env)
        dvc(["queue", "start", "-j", "2"], project, env=env)
        deadline = time.monotonic() + 600
        while time.monotonic() < deadline:
            status = dvc(["queue", "status"], project, check=False).stdout
            if "Queued" not in status and "Running" not in status:
                break
            time.sleep(5)
        assert status.count("Success") == 2, status
        parallel = _experiment_metrics(project)
        outputs = {
            name: dvc(["exp", "run", "--temp", "--name", f"seq-{name[4:]}", "-S", change], project, env=env).stdout
            for name, change in changes.items()
        }
        # A changed variant reruns its own units and the summaries, nothing else.
        out = outputs["par-unscaled"]
        for seed in (0, 1):
            assert f"Running stage 'mnist_tips_unscaled@unscaled-{seed}'" in out
            assert f"Stage 'mnist_tips@deep_relu_adam-{seed}' didn't change, skipping" in out
        assert "Running stage 'mnist_tips_table'" in out
        assert (
            "Running stage 'preprocess" not in out
            and "Running stage 'fetch" not in out
            and "Running stage 'fashion" not in out
        )
        sequential = _experiment_metrics(project)
        for name in changes:
            assert parallel[name] == sequential[f"seq-{name[4:]}"], name
            assert parallel[name] != _workspace_metrics(project)
    finally:
        dvc(["queue", "stop"], project, check=False)
        dvc(["exp", "remove", "--all-commits"], project, check=False)
        dvc(["queue", "remove", "--all"], project, check=False)


def readme_exp_show() -> list[str]:
    """The `dvc exp show` command README.md gives for comparing experiments' headline figures."""
    line = next(line for line in (ROOT / "README.md").read_text().splitlines() if line.startswith("dvc exp show "))
    return shlex.split(line.split("  #")[0])[1:]


def shown_at(command: list[str], project: Path) -> str:
    """What `command` prints in a terminal 120 columns wide (DVC's pager off)."""
    return dvc([*command, "--no-pager"] if command[0] == "exp" else command, project, env={"COLUMNS": "120"}).stdout


def check_headline_shown(project: Path, queued: tuple[str, ...] = ()) -> None:
    """`dvc metrics show` and the README's `exp show` line fit 120 columns, cut nothing short, and show each
    headline figure of both posts (claims.yaml's, DVC's 5 significant digits), and the queued experiments."""
    headline = json.loads((project / "reports/headline.json").read_text())
    spec = load_yaml(project / "claims.yaml")["headline"]
    assert {f"{post}.{key}" for post, keys in headline.items() for key in keys} == set(spec), headline
    for command in (["metrics", "show"], readme_exp_show()):
        shown = shown_at(command, project)
        assert max(len(line) for line in shown.splitlines()) <= 120 and "…" not in shown, shown
        header, workspace = (next(line for line in shown.splitlines() if word in line) for word in ("MNIST.", "0."))
        assert header.split()[-len(spec) :] == sorted(spec), shown  # each figure named, in DVC's order
        for name in sorted(spec):
            post, key = name.split(".")
            assert f"{headline[post][key]:.5g}" in workspace.split(), (name, shown)
        if command[0] == "exp":
            for name in queued:
                assert re.search(rf"\[{name}\]\s+Queued", shown), shown


def test_the_overview_commands_fit_120_columns_with_both_posts_headline(smoke, tmp_path):
    """On a fresh clone (no experiment) and with two experiments queued, `dvc metrics show` and the README's
    `dvc exp show` line show both posts' headline figures in 120 columns; the tables' full summaries are plain
    outputs, not metrics."""
    clone = tmp_path / "clone"
    subprocess.run(["git", "clone", "-q", str(smoke["path"]), str(clone)], check=True)
    check_headline_shown(clone)
    shown = dvc(["metrics", "show", "--json"], clone).stdout
    assert "reports/headline.json" in shown and "reports/mnist_tips/metrics.json" not in shown, shown
    for name, change in (
        ("lr-a", "mnist_tips.variants.deep_relu_adam.learning_rate=0.01"),
        ("ep-b", "mnist_tips.variants.unscaled.epochs=1"),
    ):
        dvc(["exp", "run", "--queue", "--name", name, "-S", change], clone)
    check_headline_shown(clone, ("lr-a", "ep-b"))


def test_two_workspace_experiments_at_once_publish_nothing_mixed(smoke):
    """The unsafe way: a second `dvc exp run` in the same workspace. DVC writes its `-S` into
    params.yaml before refusing it on a lock, and checks the workspace's cached outputs out
    again, the model of the unit that is training among them. That unit then refuses to write
    (both its outputs or neither), so the run fails before any unit or table is mixed. (A table
    stage also refuses a run whose params.yaml changed midway, and a unit filed under params
    it did not train with: see the run_guard tests above.)"""
    project, env = smoke["path"], smoke["env"]
    before = _snapshot(project / "reports")
    unit, unit_dir = "mnist_tips@deep_relu-0", project / mnist_tips_run("deep_relu", 0)
    try:
        first = start_dvc(
            ["exp", "run", "--name", "first", "-S", "mnist_tips.variants.deep_relu.epochs=20"], project, env
        )
        try:
            assert wait_for_training(first, 1, r"Running stage '(mnist_tips@[^']+)'") == [unit]
            second = dvc(
                ["exp", "run", "--name", "second", "-S", "mnist_tips.variants.deep_relu.learning_rate=0.05"],
                project,
                env=env,
                check=False,
            )
        finally:
            rest = first.communicate(timeout=600)[0]
        assert second.returncode != 0 and "is busy, it is being blocked by" in second.stderr, second.stderr
        assert first.returncode != 0
        assert not {"first", "second"} & set(_experiment_metrics(project)), "a mixed experiment was saved"
        unit_files = f"{unit_dir.relative_to(project / 'reports').as_posix()}/"
        misfiled = f"failed to reproduce '{unit}'" not in rest
        if not misfiled:
            # The usual order: the checkout lands while the unit trains, and the unit refuses.
            assert (
                "error: models/mnist_tips/deep_relu/seed0.keras: written by another run while this one ran" in rest
            ), rest
            # Its outputs persist, and the stage wrote neither: the committed run folder is as it was.
            assert _snapshot(unit_dir) == _snapshot_of(before, unit_dir.relative_to(project / "reports"))
        else:
            # On a loaded machine the unit can finish first (with the first run's params); the
            # table stage then sees params.yaml changed midway and publishes nothing.
            assert (
                "error: params.yaml changed while this run was going "
                "(mnist_tips.variants.deep_relu.learning_rate: 0.1 -> 0.05)" in rest
            ), rest
            assert "failed to reproduce 'mnist_tips_table'" in rest, rest
            unit_files = f"{unit_dir.parent.relative_to(project / 'reports').as_posix()}/"  # both seeds trained
        published = {k: v for k, v in _snapshot(project / "reports").items() if not k.startswith(unit_files)}
        assert published == {k: v for k, v in before.items() if not k.startswith(unit_files)}, (
            "a unit or a table was published"
        )
        assert "up to date" not in dvc(["status"], project).stdout
        if misfiled:
            # DVC filed the unit that trained with the old value under the new one: on any later run
            # the table's guard refuses it, naming the command that retrains it.
            refused = dvc(["repro"], project, env=env, check=False)
            remedy = f"Retrain it: `dvc repro --force --single-item {unit}`"
            assert refused.returncode != 0 and remedy in refused.stdout + refused.stderr, refused.stdout
            dvc(["repro", "--force", "--single-item", unit], project, env=env)
        # params.yaml now holds both runs' values; a plain `dvc repro` trains with them, one run.
        dvc(["repro"], project, env=env)
        assert "up to date" in dvc(["status"], project).stdout
        config = json.loads((unit_dir / "config.json").read_text())
        assert (config["epochs"], config["learning_rate"]) == (20, 0.05)
    finally:
        restore_committed(project)
        dvc(["exp", "remove", "--all-commits"], project, check=False)
    assert "up to date" in dvc(["status"], project).stdout
    assert _snapshot(project / "reports") == before


def _snapshot_of(snapshot: dict[str, bytes], folder: Path) -> dict[str, bytes]:
    """The files of `folder` in a `_snapshot` of the folder above it, named as `_snapshot(folder)` names them."""
    prefix = f"{folder.as_posix()}/"
    return {k[len(prefix) :]: v for k, v in snapshot.items() if k.startswith(prefix)}


def test_a_forced_rerun_of_a_unit_leaves_dvc_lock_unchanged(smoke):
    """The units write their model archives byte-stably (no save time, no object id), so a forced
    rerun of a unit that keeps its model gives the same dvc.lock, byte for byte."""
    project, env = smoke["path"], smoke["env"]
    lock = (project / "dvc.lock").read_bytes()
    before = _snapshot(project / "reports")
    for unit in ("mnist_tips@deep_relu-0", "fashion_final@1"):
        assert f"Running stage '{unit}'" in dvc(["repro", "--force", "--single-item", unit], project, env=env).stdout
    assert (project / "dvc.lock").read_bytes() == lock
    assert _snapshot(project / "reports") == before
    assert "up to date" in dvc(["status"], project).stdout


def _workspace_metrics(project: Path) -> dict:
    return json.loads((project / "reports/mnist_tips/metrics.json").read_text())


def test_a_flipped_byte_in_raw_data_is_caught_before_training(smoke, tmp_path):
    project, env = smoke["path"], smoke["env"]
    name = smoke["params"]["datasets"]["mnist"]["files"]["train_labels"]["name"]
    raw = project / "data/raw/mnist" / name
    good = raw.read_bytes()
    corrupt = bytearray(good)
    corrupt[len(corrupt) // 2] ^= 0xFF
    raw.write_bytes(bytes(corrupt))
    try:
        # DVC sees it: the fetch stage's output no longer matches dvc.lock.
        status = dvc(["status", "fetch@mnist"], project).stdout
        assert "fetch@mnist" in status and "modified" in status
        # Our stage sees it too, if run by hand: preprocess re-verifies every file and writes nothing.
        out = tmp_path / "prepared.npz"
        result = subprocess.run(
            [
                sys.executable,
                "-m",
                "stages.preprocess",
                "--stage",
                "preprocess@mnist_tips",
                "--raw",
                str(raw.parent),
                "--out",
                str(out),
            ],
            cwd=project,
            env=command_env(env),
            capture_output=True,
            text=True,
        )
        assert result.returncode == 1 and name in result.stderr and "error:" in result.stderr, result.stderr
        assert not out.exists()
        # `dvc repro` puts a good copy back (from DVC's cache, or by fetching again); the
        # prepared data is then unchanged, so no training stage reruns.
        repaired = dvc(["repro"], project, env=env).stdout
        assert (
            "Stage 'fetch@mnist' is cached - skipping run, checking out outputs" in repaired
            or "Running stage 'fetch@mnist'" in repaired
        )
        assert "Stage 'preprocess@mnist_tips' didn't change, skipping" in repaired
        assert "Running stage 'mnist_tips@" not in repaired
        assert raw.read_bytes() == good
    finally:
        if raw.read_bytes() != good:
            raw.write_bytes(good)
    assert "up to date" in dvc(["status"], project).stdout
