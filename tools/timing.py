"""Stage-time records and the one reader of DVC's log: `benchmarks.reproduce` and `tools.run_parallel`
record each stage's wall time in a JSON file (and one entry per run in its `_runs.json` sibling)."""

from __future__ import annotations

import datetime as dt
import json
import platform
import re
import threading
from pathlib import Path

from lib.common.core import write_json
from lib.common.paths import table_of

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
