"""Run the out-of-date stages of the pipeline in parallel on Dask, one task per DVC stage: each is a
`dvc --wait-for-lock repro --single-item STAGE` once the stages it depends on have ended, so DVC still runs,
caches, locks and records every stage, as a plain `dvc repro` would. TARGETS and --allow-missing limit the
run as in `dvc repro`; a failing stage is reported with the end of its log while the rest go on (exit 1);
Ctrl-C stops the running stages (exit 130). README.md, "Running in parallel", says more."""

from __future__ import annotations

import argparse
import contextlib
import fnmatch
import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections import deque
from pathlib import Path

import cloudpickle
import psutil

from lib.common import core
from tools.timing import RUNNING, Progress, Records, now_iso, recorded_seconds

STOP = "tools.run_parallel-stop"  # a Dask Event: set on Ctrl-C, every running stage is interrupted
LOG_TAIL = 40
PROGRESS_EVERY_S = 60  # the progress line's longest silence
BUSY_WAIT_S = 120  # how long a stage waits for another dvc that holds its outputs to end
DVC = [sys.executable, "-m", "dvc"]  # this interpreter's
# The tasks travel by value (their code, not a reference to this module or to lib.common.core, whose
# die_with_parent they use), so a scheduler or worker started anywhere, with the project's environment but
# not the project on its path, can run them: a task needs only the standard library, psutil and distributed.
cloudpickle.register_pickle_by_value(sys.modules[__name__])
cloudpickle.register_pickle_by_value(core)
OUTCOMES = {  # how the run reports each status a stage's task ends with; "broke": the task itself (its worker died)
    "ran": "ran in {seconds:.0f} s", "up to date": "up to date", "interrupted": "interrupted",
    "failed": "FAILED (exit {returncode}); the end of its log:\n{log}", "broke": "FAILED: {error}",
    "not run": "not run: {because}, which it depends on, failed"}


def _dvc_output(root: Path, *args: str) -> str:
    result = subprocess.run([*DVC, *args], cwd=root, capture_output=True, text=True)
    if result.returncode != 0:
        said = " ".join(result.stderr.split())
        if "is busy" in said or "Unable to acquire lock" in said:
            raise RuntimeError(f"another dvc is running in {root} (`dvc {' '.join(args)}`: {said}); "
                               "wait for it to end, or stop it, then run this again")
        raise RuntimeError(f"`dvc {' '.join(args)}` failed ({result.returncode}): {said}")
    return result.stdout


def pipeline(root: Path) -> tuple[list[str], dict[str, set[str]], dict[str, set[str]]]:
    """From DVC's graph: the stages in dvc.yaml's order, the stages each depends on, each one's dependency paths."""
    from dvc.repo import Repo

    with Repo(str(root)) as repo:
        stages = [stage.addressing for stage in repo.index.stages]
        upstream = {stage: set() for stage in stages}
        for stage, dependency in repo.index.graph.edges():  # an edge runs from a stage to what it needs
            upstream[stage.addressing].add(dependency.addressing)
        deps = {stage.addressing: {str(dep.def_path) for dep in stage.deps} for stage in repo.index.stages}
    return stages, upstream, deps


def _reach(stages: set[str], edges: dict[str, set[str]]) -> set[str]:
    """`stages` and every stage reached from them along `edges`, directly or not."""
    found, todo = set(stages), list(stages)
    while todo:
        for other in edges.get(todo.pop(), ()):
            if other not in found:
                found.add(other)
                todo.append(other)
    return found


def stale(changed: set[str], upstream: dict[str, set[str]], targets: list[str] | None = None) -> dict[str, set[str]]:
    """What `dvc repro [TARGETS]` would run: the changed stages and everything downstream of them (with
    `targets`, only those `wanted`), each with the ones among them it waits for, in an order where those come first."""
    downstream = {dep: {s for s, deps in upstream.items() if dep in deps} for dep in set().union(*upstream.values())}
    seen = _reach(changed, downstream)
    if targets is not None:
        seen &= wanted(targets, upstream)
    waits = {stage: upstream.get(stage, set()) & seen for stage in seen}
    ordered = {}
    while len(ordered) < len(waits):  # Kahn's order; DVC refuses cycles, so this ends
        ready = sorted(s for s in waits if s not in ordered and waits[s] <= ordered.keys())
        if not ready:
            raise RuntimeError(f"no stage can start; waiting: {sorted(set(waits) - set(ordered))}")
        ordered.update((stage, waits[stage]) for stage in ready)
    return ordered


def wanted(targets: list[str], upstream: dict[str, set[str]]) -> set[str]:
    """The stages `targets` (shell-style patterns) match and every stage they depend on; a pattern that
    matches no stage is an error (a misspelt target must not quietly run nothing)."""
    found = set()
    for pattern in targets:
        matched = {stage for stage in upstream if fnmatch.fnmatchcase(stage, pattern)}
        if not matched:
            raise ValueError(f"no stage matches {pattern!r}; the stages are the names `dvc status` prints, "
                             f"e.g. {min(upstream)!r}")
        found |= matched
    return _reach(found, upstream)


def only_missing(entries: list) -> dict[str, str] | None:
    """What a stage's `dvc status --json` entries say is missing from this clone, when that is all they
    say: outputs not in its cache (a fresh clone's models) and dependencies deleted (data another stage writes)."""
    allowed = {"changed outs": "not in cache", "changed deps": "deleted"}
    if not entries or not all(isinstance(entry, dict) and set(entry) <= set(allowed) for entry in entries):
        return None
    paths = {path: state for entry in entries for kind, changes in entry.items() for path, state in changes.items()
             if state == allowed[kind]}
    return paths if len(paths) == sum(len(changes) for entry in entries for changes in entry.values()) else None


def unchanged(status: dict, waits) -> set[str]:
    """The stages to run whose `dvc status --json` says only that dependencies were deleted: data a stage
    upstream writes again."""
    return {stage for stage, entries in status.items()
            if stage in waits and (paths := only_missing(entries)) and set(paths.values()) == {"deleted"}}


def _reads(dep: str, out: str) -> bool:
    return dep == out or dep.startswith(out.rstrip("/") + "/") or out.startswith(dep.rstrip("/") + "/")


def allow_missing(status: dict, upstream: dict[str, set[str]], deps: dict[str, set[str]],
                  targets: list[str] | None = None) -> tuple[set[str], set[str]]:
    """As `dvc repro --allow-missing`: the changed stages that run, and those DVC checks with --allow-missing
    (downstream of one that runs). A stage that only misses a cached output is left alone unless a stage that
    runs reads that output (`deps`: each stage's dependency paths); then it runs too, to bring it back."""
    found = {stage: paths for stage, entries in status.items() if (paths := only_missing(entries))}
    outs = {stage: {p for p, state in paths.items() if state == "not in cache"} for stage, paths in found.items()}
    missing = {}
    while True:  # a deleted dependency counts as missing only when a stage left alone writes it
        more = {stage: outs[stage] for stage, paths in found.items() if stage not in missing and all(
            any(_reads(path, out) for other in missing for out in outs[other])
            for path, state in paths.items() if state == "deleted")}
        if not more:
            break
        missing.update(more)
    run = set(status) - set(missing)
    while True:
        planned = stale(run, upstream, targets)
        running = [stage for stage in planned if stage not in missing or stage in run]
        needed = {stage for stage, outs in missing.items() if stage not in run
                  and any(_reads(dep, out) for r in running for dep in deps.get(r, ()) for out in outs)}
        if not needed:
            return run, set(planned) & (set(missing) - run)
        run |= needed


def plan(root: Path, targets: list[str] | None = None,
         missing_ok: bool = False) -> tuple[dict[str, set[str]], int, set[str], int, set[str]]:
    """The stages to run (each with those it waits for), how many of the rest (of those `targets` need) are up
    to date, those to run with --allow-missing, how many only miss a cached output (with `missing_ok`), and
    those whose one change is a deleted dependency: data a stage upstream writes again, byte for byte (the
    data stages verify theirs), so DVC will find them unchanged (a fresh clone's cross-validation units)."""
    stages, upstream, deps = pipeline(root)
    status = json.loads(_dvc_output(root, "status", "--json") or "{}")
    unknown = set(status) - set(stages)
    if unknown:
        raise RuntimeError(f"`dvc status` lists stages `dvc dag` does not: {sorted(unknown)}")
    changed, lenient = allow_missing(status, upstream, deps, targets) if missing_ok else (set(status), set())
    waits = stale(changed, upstream, targets)
    considered = len(stages) if targets is None else len(wanted(targets, upstream))
    left_alone = sum(1 for stage, entries in status.items() if stage not in waits and only_missing(entries))
    return waits, considered - len(waits), lenient, left_alone if missing_ok else 0, unchanged(status, waits)


def _child_setup() -> None:
    """In the `dvc` child: a Ctrl-C it is sent stops it as in a terminal (a worker started in
    the background may ignore SIGINT, and children inherit that), and it ends if its worker does."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)
    core.die_with_parent()


def run_stage(stage: str, root: str, *upstream: dict, allow_missing: bool = False) -> dict:
    """A Dask task: `dvc --wait-for-lock repro --single-item [--allow-missing] STAGE` in `root` once the stages
    it depends on (`upstream`, their tasks' results) have ended; its status (OUTCOMES) and what reports it."""
    from distributed import Event, get_client

    broken = [u for u in upstream if u["status"] not in ("ran", "up to date")]
    if broken:
        return {"stage": stage, "status": "not run", "because": broken[0].get("because", broken[0]["stage"])}
    stop = Event(STOP, client=get_client())
    if stop.is_set():
        return {"stage": stage, "status": "not run", "because": "the interrupt"}
    started = time.perf_counter()
    options = ["--allow-missing"] if allow_missing else []
    while True:
        returncode, log, ran, interrupted = _repro(stage, root, options, stop)
        # A stage rerun here because its worker died finds the dead worker's dvc still ending, holding the
        # stage's outputs ("... is busy, it is being blocked by"): wait for it, as --wait-for-lock does for
        # the project's lock. DVC itself clears a lock whose process is gone.
        busy = returncode != 0 and not interrupted and "is busy, it is being blocked by" in log
        if not busy or time.perf_counter() - started > BUSY_WAIT_S or stop.is_set():
            break
        time.sleep(2)
    status = ("ran" if ran else "up to date") if returncode == 0 else "interrupted" if interrupted else "failed"
    return {"stage": stage, "status": status, "seconds": time.perf_counter() - started,
            "returncode": returncode, "log": log}


def _repro(stage: str, root: str, options: list[str], stop) -> tuple[int, str, bool, bool]:
    """One `dvc repro --single-item` of `stage`, interrupted when `stop` is set: its exit code, the end of its
    log, whether DVC ran the stage's command, whether it was interrupted."""
    dvc = [sys.executable, "-m", "dvc"]  # the worker's interpreter: the environment it runs in
    proc = subprocess.Popen([*dvc, "--wait-for-lock", "repro", "--single-item", *options, stage], cwd=root,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, start_new_session=True,
                            preexec_fn=_child_setup)
    lines: deque[str] = deque(maxlen=LOG_TAIL)
    ran = []  # DVC says "Running stage" when it runs it, "didn't change, skipping" otherwise

    def read():
        for line in proc.stdout:
            lines.append(line)
            if (running := RUNNING.match(line)) and running[1] == stage:
                ran.append(True)

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    interrupted, signalled = False, set()
    while proc.poll() is None:
        if stop.is_set():
            # Interrupt the stage's command, not dvc: dvc then sees the command fail and
            # records nothing, whereas a signal to dvc itself can land while it rewrites
            # dvc.lock and leave that file cut short. A stage that has not started yet is
            # caught when it starts; one that has finished is left to be recorded.
            interrupted = True
            with contextlib.suppress(psutil.Error):  # dvc or a child may end meanwhile
                for child in psutil.Process(proc.pid).children(recursive=True):
                    if child.pid not in signalled:
                        signalled.add(child.pid)
                        child.send_signal(signal.SIGINT)
        with contextlib.suppress(subprocess.TimeoutExpired):
            proc.wait(timeout=1)
    reader.join(timeout=10)
    return proc.returncode, "".join(lines).rstrip(), bool(ran), interrupted


def _progress(text: str) -> None:
    print(f"run_parallel: {text}", file=sys.stderr, flush=True)


def run(root: Path, client, times=None, counts: dict | None = None, targets: list[str] | None = None,
        missing_ok: bool = False) -> int:
    """Submit the out-of-date stages to `client`; wait, reporting each; return the exit code.
    `counts` receives how many stages ran, were up to date, failed (as far as the run got)."""
    from distributed import Event, as_completed, wait

    counts = {} if counts is None else counts
    waits, up_to_date, lenient, left_alone, expected = plan(root, targets, missing_ok)
    total = len(waits)
    note = f" ({left_alone} of them only miss a cached output, left alone: --allow-missing)" if left_alone else ""
    _progress(f"{total} stages to check (changed, or downstream of a change; DVC skips those whose inputs turn out "
              f"unchanged), {up_to_date} up to date{note}")
    if not total:
        return 0
    stop = Event(STOP, client=client)
    stop.clear()
    futures = {}
    for stage, deps in waits.items():  # in dependency order, so upstream futures exist
        futures[stage] = client.submit(run_stage, stage, str(root), *[futures[d] for d in sorted(deps)],
                                       allow_missing=stage in lenient, key=f"dvc-stage-{stage}", pure=False, retries=0)
    stage_of = {future.key: stage for stage, future in futures.items()}
    ended = {status: [] for status in OUTCOMES}  # the stages that ended so, in the order they did
    workers = len(client.scheduler_info()["workers"])
    progress = Progress(list(waits), workers, recorded_seconds(root), expected)
    _progress(progress.line())
    ticking = threading.Event()

    def tick():  # at least once a minute, also while one long unit trains
        while not ticking.wait(PROGRESS_EVERY_S):
            _progress(progress.line())

    threading.Thread(target=tick, name="progress", daemon=True).start()
    try:
        for future in as_completed(futures.values()):
            stage = stage_of[future.key]
            finished = future.status == "finished"
            result = future.result() if finished else {"status": "broke", "error": repr(future.exception())}
            ended[result["status"]].append(stage)
            if result["status"] == "ran" and times is not None:
                times.add(stage, result["seconds"], side_by_side=workers)
            progress.finished(stage, result["seconds"] if result["status"] == "ran" else None)
            done = len(ended["ran"]) + len(ended["up to date"])
            _progress(f"[{done}/{total}] {stage} " + OUTCOMES[result["status"]].format(**result))
            _progress(progress.line())
    except KeyboardInterrupt:
        # Each running stage's task sees the event and sends its stage's command the SIGINT of
        # a Ctrl-C; tasks not started yet see it and do not start. Wait for all of them to end:
        # a second Ctrl-C must not leave a stage training with no one waiting for it.
        _progress("interrupted: stopping the running stages, starting no new ones")
        signal.signal(signal.SIGINT, lambda *_: _progress("still stopping the running stages; please wait"))
        stop.set()
        try:
            wait(list(futures.values()), timeout=300)
        except TimeoutError:
            _progress("some stages did not stop within 300 s")
        return 130
    finally:  # as far as the run got, also after Ctrl-C
        ticking.set()
        counts.update(stages_run=len(ended["ran"]), stages_up_to_date=len(ended["up to date"]),
                      stages_failed=len(ended["failed"]) + len(ended["broke"]) + len(ended["not run"]))
    failed, skipped = sorted(ended["failed"] + ended["broke"]), ended["not run"]
    ran, fresh = counts["stages_run"], counts["stages_up_to_date"]
    _progress(f"{ran + fresh} of {total} stages done ({ran} ran, {fresh} up to date), {len(failed)} failed"
              + (": " + ", ".join(failed) if failed else "")
              + (f", {len(skipped)} not run because a stage they depend on failed" if skipped else ""))
    return 1 if failed or skipped else 0


def main(argv: list[str] | None = None) -> int:
    """The run, with what ends it in one line: an interrupt before the stages start, or an error of dvc's."""
    try:
        return _main(argv)
    except KeyboardInterrupt:
        _progress("interrupted before any stage started")
        return 130
    except RuntimeError as error:
        _progress(f"error: {error}")
        return 1


def _main(argv: list[str] | None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    where = parser.add_mutually_exclusive_group()
    where.add_argument("--workers", type=int, default=os.cpu_count(),
                       help="worker processes of the LocalCluster (default: one per core)")
    where.add_argument("--scheduler",
                       help="address of an existing Dask scheduler whose workers share this project's filesystem")
    parser.add_argument("targets", nargs="*", metavar="TARGET",
                        help="run only these stages (shell-style patterns of stage names) and those they depend on")
    parser.add_argument("--allow-missing", action="store_true",
                        help="as dvc repro --allow-missing: leave alone the stages whose only change is a cached "
                             "output missing from this clone (e.g. the models of recorded units), unless a stage "
                             "that runs reads it")
    parser.add_argument("--times", type=Path, help="merge each stage's wall time into this file "
                        "(benchmarks: reports/benchmarks/stage_times_parallel.json)")
    args = parser.parse_args(argv)
    if args.scheduler is None and args.workers < 1:
        parser.error(f"--workers: {args.workers} is not allowed; allowed: an integer >= 1")
    started_at, started = now_iso(), time.perf_counter()  # end to end
    root = Path(_dvc_output(Path.cwd(), "root").strip()).resolve()
    targets = args.targets or None
    if targets:
        try:
            wanted(targets, pipeline(root)[1])
        except ValueError as error:
            parser.error(str(error))
    times = Records(args.times) if args.times else None

    from distributed import Client, LocalCluster

    cluster = None
    if not args.scheduler:
        # One task per worker process: each stage is a whole `dvc repro`, whose TensorFlow uses the cores it finds.
        # The workers ignore SIGINT: a terminal's Ctrl-C reaches this process alone, which then stops the
        # stages through their tasks (run()), as it would on a cluster.
        previous = signal.signal(signal.SIGINT, signal.SIG_IGN)
        try:
            cluster = LocalCluster(n_workers=args.workers, threads_per_worker=1, processes=True, dashboard_address=":0")
        finally:
            signal.signal(signal.SIGINT, previous)
    client = Client(args.scheduler or cluster)
    code, counts = 130, {}
    try:
        _progress(f"Dask dashboard: {client.dashboard_link}")
        code = run(root, client, times, counts, targets, args.allow_missing)
        return code
    finally:
        if times is not None:  # also after Ctrl-C: the stages that finished count
            times.add_run(started=started_at, wall_seconds=round(time.perf_counter() - started, 1), exit_code=code,
                          workers=len(client.scheduler_info()["workers"]), **counts)
        client.close()
        if cluster is not None:
            cluster.close()


if __name__ == "__main__":
    sys.exit(main())
