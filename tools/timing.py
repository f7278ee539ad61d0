"""Stage-time records and the one reader of DVC's log: `benchmarks.reproduce` and `tools.run_parallel`
record each stage's wall time in a JSON file (and one entry per run in its `_runs.json` sibling)."""

from __future__ import annotations

import datetime as dt
import json
import platform
import re
import statistics
import threading
import time
from pathlib import Path

from lib.common.core import write_json
from lib.common.paths import parse_unit, table_of

# What `dvc repro` prints about each stage, a line each.
RUNNING = re.compile(r"^Running stage '([^']+)'", re.MULTILINE)
LOCKED = re.compile(r"^Updating lock file", re.MULTILINE)
SKIPPED = re.compile(r"^Stage '([^']+)' didn't change, skipping", re.MULTILINE)
# Records from when each fold was a stage of its own: `fashion_cv@<variant>-<seed>-<fold>`.
ONE_FOLD = re.compile(r"(fashion_cv@.+-\d+)-\d+")


def ran_stages(output: str) -> list[str]:
    return RUNNING.findall(output)


def current_name(stage: str) -> str:
    """A recorded stage's name in today's pipeline: a one-fold record counts towards its seed's unit."""
    match = ONE_FOLD.fullmatch(stage)
    return match[1] if match else stage


def now_iso() -> str:
    return dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds")


class Records:
    """A stage-times file, merged with what it held and written after every stage: a kill loses nothing."""

    def __init__(self, path: Path):
        self.path, self.lock = Path(path), threading.Lock()  # tools.run_parallel adds from several threads
        self.runs_path = self.path.with_name(f"{self.path.stem}_runs.json")
        self.stages = json.loads(self.path.read_text())["stages"] if self.path.is_file() else {}

    def add(self, stage: str, seconds: float, **extra) -> None:
        with self.lock:
            self.stages[stage] = {"seconds": round(seconds, 1), "table": table_of(stage), "finished": now_iso(),
                                  **extra}
            self.save()

    def save(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        write_json(self.path, {"machine": platform.node(), "stages": self.stages})

    def runs(self) -> list[dict]:
        return json.loads(self.runs_path.read_text())["runs"] if self.runs_path.is_file() else []

    def add_run(self, **entry) -> None:
        with self.lock:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            write_json(self.runs_path, {"runs": [*self.runs(), entry]})


# Two at a time on this project's 2-core machines: the three-seed run, the extra seeds, the latest retrain of the
# 120 units that keep a model, the search's re-runs and final models (the last one recorded for a stage counts).
RECORDED = ("reports/benchmarks/stage_times_parallel.json", "reports/benchmarks/stage_times_seeds10.json",
            "reports/benchmarks/stage_times_retrain.json", "reports/benchmarks/stage_times_search.json")


def kind_of(stage: str) -> str:
    """Stages that take about as long as each other: a unit's variant over its seeds, a group otherwise."""
    unit = parse_unit(current_name(stage))
    if unit and unit["variant"]:
        return f"{unit['group']}@{unit['variant']}"
    return stage.split("@")[0]


def recorded_seconds(root: Path) -> dict[str, float]:
    """Each stage's recorded wall time two at a time (a unit's one-fold records summed), the latest file's."""
    seconds: dict[str, float] = {}
    for name in RECORDED:
        path = Path(root) / name
        found: dict[str, float] = {}
        for stage, entry in (json.loads(path.read_text())["stages"] if path.is_file() else {}).items():
            found[current_name(stage)] = found.get(current_name(stage), 0.0) + entry["seconds"]
        seconds.update(found)
    return seconds


def duration(seconds: float) -> str:
    minutes = round(seconds / 60)
    if minutes < 60:
        return f"{minutes} min" if minutes else "under a minute"
    return f"{minutes // 60} h {minutes % 60:02d} min"


SKIP_S = 10.0  # a stage DVC finds unchanged: its start and the check of its dependencies' hashes, about


class Progress:
    """The line a person can plan a run by: stages done of all, time elapsed and time left, estimated for each
    stage still to run from this run's times of its kind of stage, else from the recorded times (RECORDED), else
    from its group's (a unit of a variant never timed: the other variants' units), and
    shared among the workers; a stage expected `unchanged` (DVC will skip it) as the time DVC takes to see that."""

    def __init__(self, stages: list[str], workers: int, recorded: dict[str, float], unchanged=frozenset(),
                 clock=time.monotonic):
        self.pending, self.workers, self.recorded, self.clock = set(stages), max(workers, 1), recorded, clock
        self.unchanged = set(unchanged)
        self.total, self.started, self.seen = len(stages), clock(), {}
        self.by_kind: dict[str, list[float]] = {}
        for stage, seconds in recorded.items():
            self.by_kind.setdefault(kind_of(stage), []).append(seconds)

    def finished(self, stage: str, seconds: float | None = None) -> None:
        self.pending.discard(stage)
        if seconds is not None:
            self.seen.setdefault(kind_of(stage), []).append(seconds)

    def estimate(self, stage: str) -> float:
        if stage in self.unchanged:
            return SKIP_S
        kind = kind_of(stage)
        group = kind.split("@")[0]  # a kind never timed (a new variant): its group's times, this run's first

        def of_group(times: dict) -> list[float]:
            return [v for k, found in times.items() if k.split("@")[0] == group for v in found]
        for found in (self.seen.get(kind), [self.recorded[stage]] if stage in self.recorded else None,
                      self.by_kind.get(kind), of_group(self.seen), of_group(self.by_kind)):
            if found:
                return statistics.median(found)
        return 30.0  # a stage never timed (a new group): DVC and Python start-up, about

    def line(self) -> str:
        done, left = self.total - len(self.pending), sum(map(self.estimate, self.pending)) / self.workers
        elapsed = self.clock() - self.started
        return (f"progress: {done} of {self.total} stages done, {duration(elapsed)} elapsed, "
                + ("nothing left" if not self.pending else "under a minute left" if left < 30 else
                   f"about {duration(left)} left"))
