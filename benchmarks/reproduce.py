"""Run `dvc repro` and record how long each stage took: the full reproduction, timed.

    python -m benchmarks.reproduce            # same as `dvc repro`, plus timings
    python -m benchmarks.reproduce -- -s fashion_table   # anything after -- goes to dvc repro

DVC's own output streams through unchanged. Each stage that ran gets its wall time (from DVC's
"Running stage" line to the "Updating lock file" line after it, so DVC's own hashing counts)
in reports/benchmarks/stage_times.json, merged with earlier records, so a reproduction resumed
over several runs still adds up to the whole. Stages DVC skipped keep their last record.

To run independent stages side by side, use `python -m tools.run_parallel --times
reports/benchmarks/stage_times_parallel.json` (Dask): it records each stage's time there, in the
same form; `python -m benchmarks.run` compares the two runs (goal: >= 1.3x with 2 workers).
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import platform
import re
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
    return "data" if name in ("check_params", "fetch", "preprocess", "noise") else "report"


def seed_of(stage: str) -> int | None:
    """The training seed of a unit (`<mnist_tips data>@<variant>-<seed>`,
    `fashion_cv@<variant>-<seed>-<fold>`, `fashion_final@<seed>`, `fashion_cnn@<seed>`); None for
    every other stage."""
    name, _, key = stage.partition("@")
    if not key or table_of(stage) not in ("mnist_tips", "fashion"):
        return None
    if name == "fashion_cv":
        return int(key.split("-")[-2])
    return int(key.rsplit("-", 1)[-1])


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

    @property
    def runs_path(self) -> Path:
        """Beside the stage records: one entry per invocation (stage_times_runs.json)."""
        return self.path.with_name(f"{self.path.stem}_runs.json")

    def runs(self) -> list[dict]:
        return json.loads(self.runs_path.read_text())["runs"] if self.runs_path.is_file() else []

    def add_run(self, **entry) -> None:
        with self.lock:
            write_json(self.runs_path, {"runs": [*self.runs(), entry]})


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


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT)
    parser.add_argument("dvc_args", nargs="*", help="passed to dvc repro (put them after --)")
    args = parser.parse_args()

    args.out.parent.mkdir(parents=True, exist_ok=True)
    records = Records(args.out)
    started_at, started = now_iso(), time.perf_counter()
    rc, ran, skipped = sequential(records, args.dvc_args)
    wall = time.perf_counter() - started
    records.save()
    records.add_run(started=started_at, wall_seconds=round(wall, 1), exit_code=rc, stages_run=ran, stages_skipped=skipped, dvc_args=args.dvc_args)
    print(f"benchmarks.reproduce: exited {rc} after {wall:.0f} s; {ran} stages ran, {skipped} skipped or up to date; times in {args.out}", file=sys.stderr)
    return rc


if __name__ == "__main__":
    sys.exit(main())
