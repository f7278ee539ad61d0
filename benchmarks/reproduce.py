"""`dvc repro`, timed: DVC's output streams through, and each stage that ran gets its wall time ("Running
stage" to "Updating lock file": DVC's hashing counts) in reports/benchmarks/stage_times.json.

    python -m benchmarks.reproduce [-- DVC REPRO ARGS]
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import time
from pathlib import Path

from tools.timing import LOCKED, RUNNING, SKIPPED, Records, now_iso


def sequential(records: Records, dvc_args: list[str]) -> tuple[int, int, int]:
    """One `dvc repro`; returns (exit code, stages run, stages skipped)."""
    current, start, ran, skipped = None, 0.0, 0, 0
    proc = subprocess.Popen(["dvc", "repro", *dvc_args], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        for line in proc.stdout:
            sys.stdout.write(line)
            sys.stdout.flush()
            if match := RUNNING.match(line):
                current, start = match[1], time.perf_counter()
            elif LOCKED.match(line) and current:
                records.add(current, time.perf_counter() - start)
                current, ran = None, ran + 1
            skipped += bool(SKIPPED.match(line))
    except KeyboardInterrupt:  # Ctrl-C reaches DVC and its stage too; let them stop cleanly
        pass
    return proc.wait(), ran, skipped


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, default=Path("reports/benchmarks/stage_times.json"))
    parser.add_argument("dvc_args", nargs="*", help="passed to dvc repro (put them after --)")
    args = parser.parse_args()
    records, started_at, started = Records(args.out), now_iso(), time.perf_counter()
    rc, ran, skipped = sequential(records, args.dvc_args)
    wall = round(time.perf_counter() - started, 1)
    records.save()  # the stages DVC skipped keep their last record
    records.add_run(started=started_at, wall_seconds=wall, exit_code=rc, stages_run=ran, stages_skipped=skipped,
                    dvc_args=args.dvc_args)
    print(f"benchmarks.reproduce: exit {rc} after {wall:.0f} s, {ran} stages ran, {skipped} skipped", file=sys.stderr)
    return rc


if __name__ == "__main__":
    sys.exit(main())
