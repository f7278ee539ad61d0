"""tools/run_parallel.py: the pipeline's out-of-date stages as Dask tasks on a real LocalCluster,
each a `dvc repro --single-item`, against a plain `dvc repro` on the smoke project."""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import psutil
import pytest
import yaml

from tests.conftest import command_env, dvc, restore_committed, run
from tests.test_reliability import _snapshot, _unit_dir
from tools.run_parallel import allow_missing, only_missing, pipeline, stale, wanted

EDGES = [
    ("check_params", "fetch@a"),
    ("fetch@a", "prep@a"),
    ("prep@a", "train@a-0"),
    ("prep@a", "train@a-1"),
    ("train@a-0", "table"),
    ("train@a-1", "table"),
    ("check_params", "other"),
]
UPSTREAM = {
    stage: {a for a, b in EDGES if b == stage}
    for stage in ["check_params", "fetch@a", "prep@a", "train@a-0", "train@a-1", "table", "other"]
}


def test_the_pipeline_is_read_from_dvcs_graph():
    """Stages in dvc.yaml's order, each with the stages it needs and its dependency paths."""
    from tests.conftest import ROOT

    stages, upstream, deps = pipeline(ROOT)
    assert (
        stages[0] == "check_params"
        and upstream["check_params"] == set()
        and "fetch@mnist" in upstream["preprocess@mnist_tips"]
    )
    assert {s for s in stages if s.startswith("fashion_cv@")} <= upstream["fashion_table"]
    assert upstream["fashion_cv@dense64-0"] == {"check_params", "preprocess@fashion_dense"}
    assert (
        "data/prepared/fashion_dense.npz" in deps["fashion_cv@dense64-0"]
        and "lib/train" in deps["fashion_cv@dense64-0"]
    )


def test_the_plan_is_what_changed_and_everything_downstream_in_dependency_order():
    upstream = UPSTREAM
    assert upstream["table"] == {"train@a-0", "train@a-1"} and upstream["check_params"] == set()
    plan = stale({"prep@a"}, upstream)
    assert list(plan) == ["prep@a", "train@a-0", "train@a-1", "table"]  # "other" does not depend on it
    assert plan["prep@a"] == set() and plan["table"] == {"train@a-0", "train@a-1"}
    assert list(stale({"check_params"}, upstream))[0] == "check_params" and len(stale({"check_params"}, upstream)) == 7
    assert stale(set(), upstream) == {}


def test_targets_run_the_stages_they_name_and_what_those_need_not_what_follows():
    upstream = UPSTREAM
    assert wanted(["train@a-1"], upstream) == {"train@a-1", "prep@a", "fetch@a", "check_params"}
    plan = stale({"check_params"}, upstream, ["train@*"])
    assert list(plan) == ["check_params", "fetch@a", "prep@a", "train@a-0", "train@a-1"]  # no "table", no "other"
    assert plan["train@a-0"] == {"prep@a"}
    assert stale({"train@a-0"}, upstream, ["train@a-1"]) == {}  # the changed unit is not a target
    assert list(stale({"train@a-0"}, upstream, ["table"])) == ["train@a-0", "table"]
    with pytest.raises(ValueError, match="no stage matches 'trian@\\*'"):
        wanted(["trian@*"], upstream)


GONE = [{"changed outs": {"models/a0.keras": "not in cache"}}]  # `dvc status --json` on a fresh clone
DEPS = {
    "prep@a": {"data/raw/a"},
    "train@a-0": {"data/prep/a.npz"},
    "train@a-1": {"data/prep/a.npz"},
    "table": {"runs/a"},
    "other": {"params.yaml"},
}


def test_allow_missing_leaves_recorded_units_without_their_model_unless_a_running_stage_reads_them():
    upstream = UPSTREAM
    new_unit = [{"changed deps": {"params.yaml": "new"}}, {"changed outs": {"runs/a/1": "deleted"}}]
    assert only_missing(GONE) == {"models/a0.keras": "not in cache"} and only_missing(new_unit) is None
    assert only_missing([]) is None
    assert only_missing([{"changed outs": {"models/a0.keras": "not in cache", "runs/a/0": "modified"}}]) is None
    assert only_missing([{"changed deps": {"data/prep/a.npz": "modified"}}, *GONE]) is None
    # A fresh clone: the data and train@a-0's model are not in its cache, train@a-1 never ran.
    no_data = {"changed deps": {"data/prep/a.npz": "deleted"}}
    status = {
        "fetch@a": [{"changed outs": {"data/raw/a": "not in cache"}}],
        "prep@a": [{"changed deps": {"data/raw/a": "deleted"}}, {"changed outs": {"data/prep/a.npz": "not in cache"}}],
        "train@a-0": [no_data, *GONE],
        "train@a-1": [no_data, *new_unit],
    }
    run, lenient = allow_missing(status, upstream, DEPS)
    assert run == {"fetch@a", "prep@a", "train@a-1"}  # the data come back for train@a-1
    assert lenient == {"train@a-0"}  # downstream of the data: DVC checks it with --allow-missing
    assert list(stale(run, upstream)) == ["fetch@a", "prep@a", "train@a-0", "train@a-1", "table"]
    assert allow_missing({"prep@a": GONE, "train@a-0": GONE}, upstream, DEPS) == (set(), set())
    # A deleted input that no stage left alone writes is a real change: that stage runs.
    assert allow_missing({"train@a-0": [no_data, *GONE]}, upstream, DEPS) == ({"train@a-0"}, set())
    assert allow_missing({"prep@a": GONE, "other": new_unit}, upstream, DEPS) == ({"other"}, set())
    # The table reads the run folders, not the models: a missing model never makes a unit rerun.
    assert allow_missing({"train@a-0": GONE, "table": new_unit}, upstream, DEPS) == ({"table"}, set())


def parallel(project, env, *args, check=True):
    return run([sys.executable, "-m", "tools.run_parallel", *args], project, env=env, check=check)


def _ran(output: str) -> list[str]:
    return re.findall(r"\] (\S+) ran in", output)


def _remove_units(project, units) -> None:
    """Delete the run folders of `units` (DVC then lists them as changed: outputs deleted)."""
    for unit in units:
        shutil.rmtree(_unit_dir(project, unit))


def test_parallel_run_equals_a_plain_repro_byte_for_byte(smoke, tmp_path):
    """The smoke project's results come from a plain `dvc repro`; units deleted and rerun in
    parallel come back byte for byte, and DVC skips what they feed, since it is unchanged."""
    project, env = smoke["path"], smoke["env"]
    before = _snapshot(project / "reports")
    units = [f"fashion_cv@dense64-{seed}" for seed in smoke["params"]["fashion"]["seeds"]]
    _remove_units(project, units)
    side_by_side = parallel(project, env, "--workers", "2", "--times", str(tmp_path / "times.json"))
    out = side_by_side.stderr
    assert "Dask dashboard: http://" in out
    assert sorted(_ran(out)) == sorted(units), out
    # Everything downstream is scheduled after what it reads; DVC finds it unchanged.
    finished = re.findall(r"\] (\S+) (?:ran in|up to date)", out)
    assert sorted(finished) == sorted([*units, "fashion_table", "report"]) and finished[-1] == "report", out
    assert all(finished.index("fashion_table") > finished.index(unit) for unit in units)
    assert "4 of 4 stages done (2 ran, 2 up to date), 0 failed" in out, out  # two units, the table, the report
    # The line a person plans by: first before any stage ends, then after each (and once a minute).
    lines = [line for line in out.splitlines() if line.startswith("run_parallel: progress: ")]
    assert lines[0].startswith("run_parallel: progress: 0 of 4 stages done, under a minute elapsed, about "), out
    assert "progress: 4 of 4 stages done, " in lines[-1] and lines[-1].endswith(" elapsed, nothing left"), out
    assert len(lines) >= 5
    times = json.loads((tmp_path / "times.json").read_text())["stages"]
    assert set(times) == set(units) and all(t["seconds"] > 0 and t["side_by_side"] == 2 for t in times.values())
    [whole] = json.loads((tmp_path / "times_runs.json").read_text())["runs"]  # the run itself, end to end
    assert (
        whole["workers"],
        whole["stages_run"],
        whole["stages_up_to_date"],
        whole["stages_failed"],
        whole["exit_code"],
    ) == (2, 2, 2, 0, 0)
    assert whole["wall_seconds"] >= max(t["seconds"] for t in times.values())
    assert _snapshot(project / "reports") == before
    assert "up to date" in dvc(["status"], project).stdout


def test_a_failing_stage_is_reported_and_the_stages_that_do_not_need_it_finish(smoke):
    """The CNN units fail as they start (an edit of their module: a bad value would now stop the params
    check first); the MNIST row changed beside them still trains and its table is written; what needs
    the CNN (the Fashion-MNIST table, the search's table, the report) is not run; the exit code is 1."""
    project, env = smoke["path"], smoke["env"]
    params = (project / "params.yaml").read_text()
    changed = yaml.safe_load(params)
    changed["mnist_tips"]["variants"]["unscaled"]["epochs"] = 1
    (project / "params.yaml").write_text(yaml.safe_dump(changed, sort_keys=False))
    module = project / "stages/fashion_cnn.py"
    source = module.read_text()
    start = '    args = arguments(__doc__, argv, "fashion_cnn")\n'
    assert start in source
    module.write_text(
        source.replace(start, start + '    raise SystemExit("error: this unit fails (a test\'s edit)")\n')
    )
    try:
        result = parallel(project, env, "--workers", "2", check=False)
        out = result.stderr
        assert result.returncode == 1, out
        assert "fashion_cnn@0 FAILED (exit" in out and "fashion_cnn@1 FAILED (exit" in out
        assert "error: this unit fails (a test's edit)" in out  # its log
        assert {"mnist_tips_unscaled@unscaled-0", "mnist_tips_unscaled@unscaled-1", "mnist_tips_table"} <= set(
            _ran(out)
        ), out
        assert "fashion_table not run: fashion_cnn@" in out and "report not run: fashion_cnn@" in out
        assert "search_table not run: fashion_cnn@" in out  # it sets the search's winner beside the CNN
        assert "2 failed: fashion_cnn@0, fashion_cnn@1, 3 not run because a stage they depend on failed" in out
        status = dvc(["status", "mnist_tips_table", "mnist_tips_unscaled"], project).stdout
        assert "up to date" in status, status
    finally:
        restore_committed(project)  # the committed results back, without training them again
    assert "up to date" in dvc(["status"], project).stdout


def test_ctrl_c_stops_every_stage_and_a_rerun_resumes(smoke):
    """Two Ctrl-C's in quick succession (the second used to end the run in a traceback, leaving a
    stage training on as an orphan): every stage stops, nothing runs on, a rerun resumes."""
    project, env = smoke["path"], smoke["env"]
    before = _snapshot(project / "reports")
    variants = smoke["params"]["fashion"]["variants"]
    units = [f"fashion_cv@{v}-{seed}" for v in variants for seed in smoke["params"]["fashion"]["seeds"]]
    _remove_units(project, units)
    proc = subprocess.Popen(
        [sys.executable, "-m", "tools.run_parallel", "--workers", "2"],
        cwd=project,
        env=command_env(env),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
    )
    try:
        first = []
        deadline = time.monotonic() + 300
        while time.monotonic() < deadline:
            line = proc.stderr.readline()
            first.append(line)
            if re.search(r"\] fashion_cv@\S+ ran in", line):
                break
        else:
            raise AssertionError("".join(first))
        descendants = psutil.Process(proc.pid).children(recursive=True)
        os.killpg(proc.pid, signal.SIGINT)  # the terminal's Ctrl-C: the whole foreground group
        time.sleep(0.3)
        os.killpg(proc.pid, signal.SIGINT)  # and an impatient second one, while the stages stop
        rest = proc.communicate(timeout=180)[1]
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
    out = "".join(first) + rest
    assert proc.returncode == 130, out
    assert "interrupted: stopping the running stages, starting no new ones" in out
    assert "still stopping the running stages; please wait" in out and "Traceback" not in out, out
    _, alive = psutil.wait_procs(descendants, timeout=60)
    assert not [p for p in alive if "dvc" in " ".join(p.cmdline()) or "stages." in " ".join(p.cmdline())], (
        "a stage runs on"
    )
    finished = set(re.findall(r"\] (fashion_cv@\S+) ran in", out))
    assert finished and len(finished) < len(units), out
    status = dvc(["status"], project).stdout
    assert "up to date" not in status and not any(f"{unit}:" in status for unit in finished), status

    resumed = parallel(project, env, "--workers", "2").stderr
    assert set(_ran(resumed)) <= set(units) - finished and _ran(resumed), resumed  # nothing that finished is retrained
    assert "up to date" in dvc(["status"], project).stdout
    assert not list((project / "reports/runs/fashion/cv").rglob("*.tmp"))
    assert _snapshot(project / "reports") == before


def test_a_fresh_clone_trains_only_the_missing_unit_with_allow_missing(smoke, tmp_path):
    """A clone of the committed smoke project has no DVC cache: no data, no models. With one
    unit's run folder deleted (a unit dvc.lock does not hold), --allow-missing fetches and
    prepares the data that unit reads and trains it alone; the recorded units beside it, whose
    models the clone lacks, are checked by DVC and left as they are."""
    project, env = smoke["path"], smoke["env"]
    clone = tmp_path / "clone"
    run(["git", "clone", "-q", str(project), str(clone)], tmp_path)
    dvc(["config", "--local", "cache.dir", str(tmp_path / "empty-cache")], clone)
    seed = smoke["params"]["mnist_tips"]["seeds"][0]
    variants = smoke["params"]["mnist_tips"]["data"]["mnist_tips"]
    unit = f"mnist_tips@{variants[0]}-{seed}"
    shutil.rmtree(clone / f"reports/runs/mnist_tips/{variants[0]}/seed{seed}")
    before = json.loads(dvc(["status", "--json"], clone).stdout)
    assert only_missing(before[f"mnist_tips@{variants[1]}-{seed}"]) and not only_missing(before[unit])

    out = parallel(clone, env, "--workers", "2", "--allow-missing").stderr
    assert sorted(_ran(out)) == sorted(["fetch@mnist", "preprocess@mnist_tips", unit]), out
    checked = set(re.findall(r"\] (mnist_tips@\S+) up to date", out))
    assert checked == {f"mnist_tips@{v}-{s}" for v in variants for s in smoke["params"]["mnist_tips"]["seeds"]} - {
        unit
    }, out
    assert "only miss a cached output, left alone: --allow-missing" in out
    after = json.loads(dvc(["status", "--json"], clone).stdout)
    assert unit not in after and all(only_missing(entries) for entries in after.values()), after
    assert run(["git", "status", "--porcelain", "reports/"], clone).stdout == ""  # the unit came back byte for byte


def test_a_second_run_in_a_busy_project_is_one_line(smoke):
    """Another dvc holds the project (here: its lock, as a running `dvc repro` does): run_parallel ends
    in one line saying so, exit 1 (it used to end in a RuntimeError traceback)."""
    from dvc.repo import Repo

    project, env = smoke["path"], smoke["env"]
    with Repo(str(project)) as repo, repo.lock:
        result = parallel(project, env, "--workers", "1", check=False)
    lines = result.stderr.strip().splitlines()
    assert result.returncode == 1 and "Traceback" not in result.stderr, result.stderr
    assert lines[-1].startswith(f"run_parallel: error: another dvc is running in {project}"), lines


def _start(args: list[str], cwd, env) -> subprocess.Popen:
    return subprocess.Popen(
        args, cwd=cwd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True
    )


def test_the_readme_cluster_recipe_runs_and_a_killed_worker_costs_only_a_rerun(smoke, tmp_path):
    """README "A cluster", as written: `dask scheduler` and `dask worker` processes started outside the
    project, with its environment but not the project on their path (they used to fail every stage:
    "No module named ..."). A worker killed while a unit trains: the unit reruns on another worker and
    the results come back byte for byte."""
    project, env = smoke["path"], smoke["env"]
    before = _snapshot(project / "reports")
    units = [f"fashion_cv@dense64-{seed}" for seed in smoke["params"]["fashion"]["seeds"]]
    _remove_units(project, units)
    bare = {k: v for k, v in command_env(env).items() if k != "PYTHONPATH"}
    bin_dir = Path(sys.executable).parent
    port = _free_port()
    address = f"tcp://127.0.0.1:{port}"
    daemons = [_start([str(bin_dir / "dask"), "scheduler", "--port", str(port), "--no-dashboard"], tmp_path, bare)]
    try:
        time.sleep(3)
        for _ in range(2):
            daemons.append(
                _start(
                    [str(bin_dir / "dask"), "worker", address, "--nworkers", "1", "--nthreads", "1", "--no-dashboard"],
                    tmp_path,
                    bare,
                )
            )
        proc = subprocess.Popen(
            [sys.executable, "-m", "tools.run_parallel", "--scheduler", address],
            cwd=project,
            env=command_env(env),
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
        )
        killed = None
        deadline = time.monotonic() + 300
        while killed is None and time.monotonic() < deadline and proc.poll() is None:
            for daemon in daemons[1:]:
                workers = psutil.Process(daemon.pid).children()  # the nanny's worker process
                for worker in workers:
                    if any("stages.fashion_cv" in " ".join(p.cmdline()) for p in worker.children(recursive=True)):
                        time.sleep(2)  # well inside its training
                        worker.kill()
                        killed = worker
            time.sleep(0.5)
        out = proc.communicate(timeout=600)[1]
    finally:
        # The workers before their scheduler: a worker whose scheduler has gone first keeps trying to reach it.
        # One still closing after a minute (a loaded machine) is killed: how fast Dask shuts down is not tested.
        for daemon in reversed(daemons):
            with contextlib.suppress(ProcessLookupError):
                os.killpg(daemon.pid, signal.SIGTERM)
            try:
                daemon.wait(timeout=60)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(daemon.pid, signal.SIGKILL)
                daemon.wait(timeout=30)
    assert killed is not None, f"no worker was caught training: {out}"
    assert proc.returncode == 0, out
    assert "No module named" not in out and sorted(_ran(out)) == sorted(units), out
    assert _snapshot(project / "reports") == before
    assert "up to date" in dvc(["status"], project).stdout


def _free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_the_progress_line_estimates_from_this_runs_times_then_the_recorded_ones():
    from tools.run_parallel import unchanged
    from tools.timing import Progress, duration

    now = [0.0]
    recorded = {"mnist_tips@deep_relu-0": 100.0, "mnist_tips@deep_relu-1": 140.0, "fashion_cnn@0": 600.0}
    stages = ["check_params", "mnist_tips@deep_relu-2", "mnist_tips@deep_relu-3", "fashion_cnn@1"]
    progress = Progress(stages, 2, recorded, clock=lambda: now[0])
    # Never timed: 30 s; a unit's kind (its variant over seeds): the median of its recorded seeds, 120 s.
    assert progress.line() == "progress: 0 of 4 stages done, under a minute elapsed, about 7 min left"  # 870 s / 2
    now[0] = 600.0
    progress.finished("check_params", 12.0)
    progress.finished("mnist_tips@deep_relu-2", 300.0)  # this run's own time of the kind wins: 300 s
    assert progress.line() == "progress: 2 of 4 stages done, 10 min elapsed, about 8 min left"  # (300 + 600) / 2
    progress.finished("mnist_tips@deep_relu-3", 280.0)
    progress.finished("fashion_cnn@1")  # up to date: no time
    assert progress.line() == "progress: 4 of 4 stages done, 10 min elapsed, nothing left"
    last = Progress(["check_params"], 2, {"check_params": 40.0}, clock=lambda: now[0])  # 20 s left on 2 workers
    assert last.line().endswith("elapsed, under a minute left")  # not "about under a minute left"
    # A variant never timed (a search re-run's new place): its group's times, this run's before the recorded.
    progress = Progress(["search_cv@top2-0", "search_cv@top3-0"], 1, {"search_cv@top9-0": 100.0}, clock=lambda: now[0])
    assert progress.estimate("search_cv@top2-0") == 100.0
    progress.finished("search_cv@top1-0", 400.0)
    assert progress.line() == "progress: 0 of 2 stages done, under a minute elapsed, about 13 min left"  # 2 x 400 s
    # A fresh clone's cross-validation unit: its one change a deleted dependency (data written again), so DVC
    # will skip it; it counts as the time DVC takes to see that, not as its training.
    status = {
        "fashion_cv@dense64-0": [{"changed deps": {"data/prepared/fashion_dense.npz": "deleted"}}],
        "fashion_cnn@0": [
            {"changed deps": {"data/prepared/fashion_cnn.npz": "deleted"}},
            {"changed outs": {"models/fashion/cnn/seed0.keras": "not in cache"}},
        ],
        "fashion_final@0": [{"changed deps": {"stages/fashion_final.py": "modified"}}],
    }
    found = unchanged(status, set(status))
    assert found == {"fashion_cv@dense64-0"}
    progress = Progress(
        ["fashion_cv@dense64-0", "fashion_cnn@1"],
        1,
        {"fashion_cv@dense64-1": 900.0, **recorded},
        found,
        clock=lambda: now[0],
    )
    assert progress.line() == "progress: 0 of 2 stages done, under a minute elapsed, about 10 min left"  # 10 s + 600 s
    assert [duration(s) for s in (20, 90, 3600, 3 * 3600 + 65 * 60)] == [
        "under a minute",
        "2 min",
        "1 h 00 min",
        "4 h 05 min",
    ]
