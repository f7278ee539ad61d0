"""Run the out-of-date stages of the pipeline in parallel on Dask: one task per DVC stage.

    python -m tools.run_parallel                       # a LocalCluster, one worker per core
    python -m tools.run_parallel --workers 2
    python -m tools.run_parallel --scheduler tcp://HOST:8786   # an existing Dask cluster
    python -m tools.run_parallel 'fashion_cv@*'         # only these stages and what they need

TARGETS, like `dvc repro TARGET`, limit the run to the named stages (shell-style patterns of
stage names, as `dvc status` prints them) and the stages they depend on; the stages downstream
of them wait for a later run. A run across sessions can so train the units first and write the
tables once all of them are there.

It asks DVC which stages are out of date (`dvc status --json`, and everything downstream of
them in `dvc dag --dot`), then submits one Dask task per stage, each running
`dvc --wait-for-lock repro --single-item STAGE` in the project, after the tasks of the stages it
depends on. DVC still runs, caches, locks and records every stage, so the result is the same
dvc.lock and the same files as a plain `dvc repro`, and a rerun resumes from what finished.

A stage that fails is reported with the end of its log; the stages that do not depend on it
go on, and the command exits 1 at the end. Ctrl-C stops the running stages (each stage's
command gets the SIGINT a terminal's Ctrl-C would give it; DVC then records nothing for it)
and starts nothing new.

With --scheduler, every worker must see this project at the same path (a shared filesystem
holding the workspace and its DVC cache) and have the project's Python environment.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import fnmatch
import json
import os
import re
import signal
import subprocess
import sys
import threading
import time
from collections import deque
from pathlib import Path

import psutil

from stages.common import die_with_parent

STOP = "tools.run_parallel-stop"  # a Dask Event: set on Ctrl-C, every running stage is interrupted
EDGE = re.compile(r'^"([^"]+)" -> "([^"]+)";$')
NODE = re.compile(r'^"([^"]+)";$')
LOG_TAIL = 40


def dvc_command(*args: str) -> list[str]:
    """`dvc ARGS` with this interpreter, so workers use the environment they run in."""
    return [sys.executable, "-m", "dvc", *args]


def _dvc_output(root: Path, *args: str) -> str:
    result = subprocess.run(dvc_command(*args), cwd=root, capture_output=True, text=True)
    if result.returncode != 0:
        raise RuntimeError(f"`dvc {' '.join(args)}` failed ({result.returncode}): {result.stderr.strip()}")
    return result.stdout


def parse_dag(dot: str) -> tuple[list[str], dict[str, set[str]]]:
    """Stages and, for each, the stages it depends on, from `dvc dag --dot`."""
    stages, upstream = [], {}
    for line in dot.splitlines():
        if match := NODE.match(line.strip()):
            stages.append(match.group(1))
            upstream.setdefault(match.group(1), set())
        elif match := EDGE.match(line.strip()):
            upstream.setdefault(match.group(2), set()).add(match.group(1))
    return stages, upstream


def stale(changed: set[str], upstream: dict[str, set[str]], targets: list[str] | None = None) -> dict[str, set[str]]:
    """What `dvc repro [TARGETS]` would run: the changed stages and everything downstream of
    them, each with the stages among them that it waits for, in an order where those come
    first. With `targets` (shell-style patterns of stage names), only the stages they match and
    the stages those depend on, directly or not."""
    downstream: dict[str, set[str]] = {}
    for stage, deps in upstream.items():
        for dep in deps:
            downstream.setdefault(dep, set()).add(stage)
    todo, seen = deque(sorted(changed)), set(changed)
    while todo:
        for child in sorted(downstream.get(todo.popleft(), ())):
            if child not in seen:
                seen.add(child)
                todo.append(child)
    if targets is not None:
        seen &= wanted(targets, upstream)
    waits = {stage: upstream.get(stage, set()) & seen for stage in seen}
    ordered, done = {}, set()
    while len(ordered) < len(waits):  # Kahn's order; DVC refuses cycles, so this ends
        ready = sorted(s for s in waits if s not in done and waits[s] <= done)
        if not ready:
            raise RuntimeError(f"no stage can start; waiting: {sorted(set(waits) - done)}")
        for stage in ready:
            ordered[stage] = waits[stage]
            done.add(stage)
    return ordered


def wanted(targets: list[str], upstream: dict[str, set[str]]) -> set[str]:
    """The stages `targets` match and every stage they depend on; a pattern that matches no
    stage is an error (a misspelt target must not quietly run nothing)."""
    found = set()
    for pattern in targets:
        matched = {stage for stage in upstream if fnmatch.fnmatchcase(stage, pattern)}
        if not matched:
            raise ValueError(f"no stage matches {pattern!r}; the stages are the names `dvc status` prints, e.g. {min(upstream)!r}")
        found |= matched
    todo = deque(found)
    while todo:
        for dep in upstream.get(todo.popleft(), ()):
            if dep not in found:
                found.add(dep)
                todo.append(dep)
    return found


def plan(root: Path, targets: list[str] | None = None) -> tuple[dict[str, set[str]], int]:
    """The stages to run (each with those it waits for), and how many of the rest are up to
    date (with `targets`, of the stages they need)."""
    stages, upstream = parse_dag(_dvc_output(root, "dag", "--dot"))
    changed = set(json.loads(_dvc_output(root, "status", "--json") or "{}"))
    unknown = changed - set(stages)
    if unknown:
        raise RuntimeError(f"`dvc status` lists stages `dvc dag` does not: {sorted(unknown)}")
    waits = stale(changed, upstream, targets)
    considered = len(stages) if targets is None else len(wanted(targets, upstream))
    return waits, considered - len(waits)


def _child_setup() -> None:
    """In the `dvc` child: a Ctrl-C it is sent stops it as in a terminal (a worker started in
    the background may ignore SIGINT, and children inherit that), and it ends if its worker does."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)
    die_with_parent()


def run_stage(stage: str, root: str, *upstream: dict) -> dict:
    """A Dask task: `dvc --wait-for-lock repro --single-item STAGE` in `root`, once the tasks of
    the stages it depends on (`upstream`, their results) have ended. Returns what happened:
    status "ran", "up to date", "failed" (with the end of its log), "not run" (a stage it
    depends on did not succeed) or "interrupted"."""
    from distributed import Event, get_client

    broken = [u for u in upstream if u["status"] not in ("ran", "up to date")]
    if broken:
        return {"stage": stage, "status": "not run", "because": broken[0].get("because", broken[0]["stage"])}
    stop = Event(STOP, client=get_client())
    if stop.is_set():
        return {"stage": stage, "status": "not run", "because": "the interrupt"}
    started = time.perf_counter()
    proc = subprocess.Popen(dvc_command("--wait-for-lock", "repro", "--single-item", stage), cwd=root,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, start_new_session=True,
                            preexec_fn=_child_setup)
    lines: deque[str] = deque(maxlen=LOG_TAIL)
    ran = []  # DVC says "Running stage" when it runs it, "didn't change, skipping" otherwise

    def read():
        for line in proc.stdout:
            lines.append(line)
            if line.startswith(f"Running stage '{stage}'"):
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
        try:
            proc.wait(timeout=1)
        except subprocess.TimeoutExpired:
            pass
    reader.join(timeout=10)
    seconds = time.perf_counter() - started
    if interrupted and proc.returncode != 0:
        return {"stage": stage, "status": "interrupted", "seconds": seconds}
    if proc.returncode != 0:
        return {"stage": stage, "status": "failed", "returncode": proc.returncode, "log": "".join(lines), "seconds": seconds}
    return {"stage": stage, "status": "ran" if ran else "up to date", "seconds": seconds}


def _progress(text: str) -> None:
    print(f"run_parallel: {text}", file=sys.stderr, flush=True)


def run(root: Path, client, times=None, counts: dict | None = None, targets: list[str] | None = None) -> int:
    """Submit the out-of-date stages to `client`; wait, reporting each; return the exit code.
    `counts` receives how many stages ran, were up to date, failed (as far as the run got)."""
    counts = {} if counts is None else counts
    from distributed import Event, as_completed, wait

    waits, up_to_date = plan(root, targets)
    total = len(waits)
    _progress(f"{total} stages to check (changed, or downstream of a change; DVC skips those whose "
              f"inputs turn out unchanged), {up_to_date} up to date")
    if not total:
        return 0
    stop = Event(STOP, client=client)
    stop.clear()
    futures = {}
    for stage, deps in waits.items():  # in dependency order, so upstream futures exist
        futures[stage] = client.submit(run_stage, stage, str(root), *[futures[d] for d in sorted(deps)],
                                       key=f"dvc-stage-{stage}", pure=False, retries=0)
    stage_of = {future.key: stage for stage, future in futures.items()}
    done, ran, failed, skipped = 0, 0, [], []
    workers = len(client.scheduler_info()["workers"])
    try:
        for future in as_completed(futures.values()):
            stage = stage_of[future.key]
            if future.status != "finished":  # the task itself broke (e.g. its worker died)
                failed.append(stage)
                _progress(f"[{done}/{total}] {stage} FAILED: {future.exception()!r}")
                continue
            result = future.result()
            status = result["status"]
            if status in ("ran", "up to date"):
                done += 1
                if status == "up to date":
                    _progress(f"[{done}/{total}] {stage} up to date")
                    continue
                ran += 1
                if times is not None:
                    times.add(stage, result["seconds"], side_by_side=workers)
                _progress(f"[{done}/{total}] {stage} ran in {result['seconds']:.0f} s")
            elif status == "failed":
                failed.append(stage)
                _progress(f"[{done}/{total}] {stage} FAILED (exit {result['returncode']}); the end of its log:\n{result['log'].rstrip()}")
            elif status == "not run":
                skipped.append(stage)
                _progress(f"[{done}/{total}] {stage} not run: {result['because']}, which it depends on, failed")
            else:
                _progress(f"[{done}/{total}] {stage} interrupted")
    except KeyboardInterrupt:
        # Each running stage's task sees the event and sends its stage's command the SIGINT of
        # a Ctrl-C; tasks not started yet see it and do not start. Wait for all of them to end.
        _progress("interrupted: stopping the running stages, starting no new ones")
        stop.set()
        try:
            wait(list(futures.values()), timeout=300)
        except TimeoutError:
            _progress("some stages did not stop within 300 s")
        return 130
    finally:  # as far as the run got, also after Ctrl-C
        counts.update(stages_run=ran, stages_up_to_date=done - ran, stages_failed=len(failed) + len(skipped))
    _progress(f"{done} of {total} stages done ({ran} ran, {done - ran} up to date), {len(failed)} failed{': ' + ', '.join(sorted(failed)) if failed else ''}"
              f"{f', {len(skipped)} not run because a stage they depend on failed' if skipped else ''}")
    return 1 if failed or skipped else 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    where = parser.add_mutually_exclusive_group()
    where.add_argument("--workers", type=int, default=os.cpu_count(),
                       help="worker processes of the LocalCluster (default: one per core)")
    where.add_argument("--scheduler", help="address of an existing Dask scheduler whose workers share this project's filesystem")
    parser.add_argument("targets", nargs="*", metavar="TARGET",
                        help="run only these stages (shell-style patterns of stage names) and those they depend on")
    parser.add_argument("--times", type=Path, help="merge each stage's wall time into this file (benchmarks: reports/benchmarks/stage_times_parallel.json)")
    args = parser.parse_args(argv)
    if args.scheduler is None and args.workers < 1:
        parser.error(f"--workers: {args.workers} is not allowed; allowed: an integer >= 1")
    started_at, started = dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"), time.perf_counter()  # end to end
    root = Path(_dvc_output(Path.cwd(), "root").strip()).resolve()
    targets = args.targets or None
    if targets:
        try:
            wanted(targets, parse_dag(_dvc_output(root, "dag", "--dot"))[1])
        except ValueError as error:
            parser.error(str(error))
    times = None
    if args.times:
        from benchmarks.reproduce import Records

        times = Records(args.times)

    from distributed import Client, LocalCluster

    if args.scheduler:
        client = Client(args.scheduler)
        cluster = None
    else:
        # One task per worker process: each stage is a whole `dvc repro` process, and TensorFlow
        # inside it uses the cores it finds.
        # The worker processes ignore SIGINT: a terminal's Ctrl-C reaches this process alone,
        # which then stops the stages through their tasks (run()), as it would on a cluster.
        previous = signal.signal(signal.SIGINT, signal.SIG_IGN)
        try:
            cluster = LocalCluster(n_workers=args.workers, threads_per_worker=1, processes=True, dashboard_address=":0")
        finally:
            signal.signal(signal.SIGINT, previous)
        client = Client(cluster)
    code, counts = 130, {}
    try:
        _progress(f"Dask dashboard: {client.dashboard_link}")
        code = run(root, client, times, counts, targets)
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
