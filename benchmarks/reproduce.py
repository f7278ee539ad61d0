"""Run `dvc repro` and record how long each stage took: the full reproduction, timed.

    python -m benchmarks.reproduce            # same as `dvc repro`, plus timings
    python -m benchmarks.reproduce -- -s fashion_table   # anything after -- goes to dvc repro
    python -m benchmarks.reproduce --jobs 2   # independent stages side by side (see below)

DVC's own output streams through unchanged. Each stage that ran gets its wall time (from DVC's
"Running stage" line to the "Updating lock file" line after it, so DVC's own hashing counts)
in reports/benchmarks/stage_times.json, merged with earlier records, so a reproduction resumed
over several runs still adds up to the whole. Stages DVC skipped keep their last record.

With --jobs N, the out-of-date stages (what `dvc status` lists, and everything downstream of
them) run as `dvc --wait-for-lock repro --single-item STAGE`, up to N at a time, each once
every stage it depends on has finished. It is still DVC that runs, caches and locks every
stage: the result is the same dvc.lock and the same files as a plain `dvc repro`. TensorFlow
keeps its default threads (one per core) in every stage, although N stages then share the
cores: on one thread each they would run faster, but TensorFlow splits its sums by thread
count, so the last bits of the results would depend on how the pipeline was run. Wall times
are recorded as above, each marked as shared with other stages.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import platform
import re
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

from stages.common import write_json

RUNNING = re.compile(r"^Running stage '([^']+)'")
LOCKED = re.compile(r"^Updating lock file")
SKIPPED = re.compile(r"^Stage '([^']+)' didn't change, skipping")
DEFAULT_OUT = Path("reports/benchmarks/stage_times.json")


def table_of(stage: str) -> str:
    """Which table a stage's time counts towards."""
    name = stage.split("@")[0]
    if name.startswith("mnist_tips"):
        return "mnist_tips"
    if name.startswith("fashion"):
        return "fashion"
    return "data" if name in ("check_params", "fetch", "preprocess") else "report"


def now_iso() -> str:
    return dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds")


class Records:
    """reports/benchmarks/stage_times.json, written after every stage: a kill loses nothing."""

    def __init__(self, path: Path):
        self.path = path
        self.stages = json.loads(path.read_text())["stages"] if path.is_file() else {}
        self.lock = threading.Lock()

    def add(self, stage: str, seconds: float, **extra) -> None:
        with self.lock:
            self.stages[stage] = {"seconds": round(seconds, 1), "table": table_of(stage), "finished": now_iso(), **extra}
            self.save()

    def save(self) -> None:
        write_json(self.path, {"machine": platform.node(), "stages": self.stages})


def sequential(records: Records, dvc_args: list[str]) -> tuple[int, int, int]:
    """One `dvc repro`; returns (exit code, stages run, stages skipped)."""
    current, current_start, ran, skipped = None, 0.0, 0, 0
    proc = subprocess.Popen(["dvc", "repro", *dvc_args], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, bufsize=1)
    try:
        for line in proc.stdout:
            sys.stdout.write(line)
            sys.stdout.flush()
            now = time.perf_counter()
            if match := RUNNING.match(line):
                current, current_start = match.group(1), now
            elif LOCKED.match(line) and current:
                records.add(current, now - current_start)
                ran += 1
                current = None
            elif SKIPPED.match(line):
                skipped += 1
    except KeyboardInterrupt:  # Ctrl-C reaches DVC and its stage too; let them stop cleanly
        pass
    return proc.wait(), ran, skipped


def stale_stages() -> tuple[dict[str, set[str]], int]:
    """The stages a `dvc repro` would run, each with the stages among them it waits for: what
    `dvc status` lists and everything downstream of it. Also returns how many are up to date."""
    import networkx as nx
    from dvc.repo import Repo

    with Repo() as repo:
        graph = repo.index.graph  # an edge A -> B: stage A depends on stage B
        changed = set(repo.status())
        by_name = {stage.addressing: stage for stage in graph.nodes}
        stale = set()
        for name in changed:
            if name in by_name:
                stale |= {s.addressing for s in nx.ancestors(graph, by_name[name])} | {name}
        waits = {name: {s.addressing for s in nx.descendants(graph, by_name[name])} & stale for name in stale}
    return waits, len(by_name) - len(stale)


def run_one(stage: str, jobs: int, records: Records, out_lock: threading.Lock, procs: dict) -> int:
    started = time.perf_counter()
    proc = subprocess.Popen(["dvc", "--wait-for-lock", "repro", "--single-item", stage], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, bufsize=1)
    procs[stage] = proc
    for line in proc.stdout:
        with out_lock:
            sys.stdout.write(f"[{stage}] {line}")
            sys.stdout.flush()
    rc = proc.wait()
    if rc == 0:
        records.add(stage, time.perf_counter() - started, side_by_side=jobs)
    return rc


def parallel(records: Records, jobs: int) -> tuple[int, int, int]:
    """Run the stale stages, up to `jobs` at a time, in dependency order."""
    waits, up_to_date = stale_stages()
    total, done, failed, running, procs, interrupted = len(waits), set(), [], {}, {}, False
    out_lock, finished = threading.Lock(), threading.Condition()
    print(f"benchmarks.reproduce: {total} stages to run, {up_to_date} up to date; {jobs} at a time", file=sys.stderr)

    def work(stage):
        rc = run_one(stage, jobs, records, out_lock, procs)
        with finished:
            del running[stage]
            (done.add if rc == 0 else failed.append)(stage)
            with out_lock:
                print(f"benchmarks.reproduce: [{len(done)}/{total}] {stage} {'done' if rc == 0 else f'FAILED (exit {rc})'}", file=sys.stderr)
            finished.notify()

    with finished:
        try:
            while len(done) < total and not failed:
                ready = sorted(s for s in waits if s not in done and s not in running and waits[s] <= done)
                for stage in ready[: jobs - len(running)]:
                    running[stage] = threading.Thread(target=work, args=(stage,), daemon=True)
                    running[stage].start()
                if not running:  # nothing can start and nothing runs: cannot happen in a DAG
                    raise RuntimeError(f"no stage can start; waiting: {sorted(set(waits) - done)}")
                finished.wait()
        except KeyboardInterrupt:  # stop the running stages as Ctrl-C stops a plain dvc repro
            interrupted = True
            for stage in running:
                if stage in procs:
                    procs[stage].send_signal(signal.SIGINT)
        while running:  # a stage failed: let the others finish, start nothing new
            finished.wait()
    return (130 if interrupted else 1 if failed else 0), len(done), up_to_date


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT)
    parser.add_argument("--jobs", type=int, default=1, help="stages side by side (default 1: one plain `dvc repro`)")
    parser.add_argument("dvc_args", nargs="*", help="passed to dvc repro (put them after --); not with --jobs")
    args = parser.parse_args()
    if args.jobs < 1:
        parser.error(f"--jobs: {args.jobs} is not allowed; allowed: an integer >= 1")
    if args.jobs > 1 and args.dvc_args:
        parser.error("--jobs runs the whole pipeline; dvc repro arguments are not allowed with it")

    args.out.parent.mkdir(parents=True, exist_ok=True)
    records = Records(args.out)
    started_at, started = now_iso(), time.perf_counter()
    if args.jobs == 1:
        rc, ran, skipped = sequential(records, args.dvc_args)
    else:
        rc, ran, skipped = parallel(records, args.jobs)
    wall = time.perf_counter() - started
    records.save()
    runs_path = args.out.with_name("runs.json")
    runs = json.loads(runs_path.read_text())["runs"] if runs_path.is_file() else []
    runs.append({"started": started_at, "wall_seconds": round(wall, 1), "exit_code": rc, "stages_run": ran, "stages_skipped": skipped, "jobs": args.jobs, "dvc_args": args.dvc_args})
    write_json(runs_path, {"runs": runs})
    print(f"benchmarks.reproduce: exited {rc} after {wall:.0f} s; {ran} stages ran, {skipped} skipped or up to date; times in {args.out}", file=sys.stderr)
    return rc


if __name__ == "__main__":
    sys.exit(main())
