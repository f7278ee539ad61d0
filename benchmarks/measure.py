"""Measure the machine, our training code and the pipeline into reports/benchmarks.json, section by section
(those not asked for keep their last results), then render reports/benchmarks.md. Run it on an idle machine.

    python -m benchmarks.measure [--sections dvc,memory] [--families mnist_3x689] [--repeats 3]
"""

from __future__ import annotations

import argparse
import datetime as dt
import functools
import json
import os
import platform
import re
import shlex
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import timeit
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from dvc.repo import Repo

from benchmarks import render
from benchmarks.throughput import FAMILIES, reproduction_tflop
from lib.common.core import load_yaml, write_json
from lib.common.paths import parse_unit, table_of, unit_files
from lib.results.search import read_study
from tools.timing import SKIPPED, Records, current_name, now_iso, ran_stages

OUT_JSON = Path("reports/benchmarks.json")
EARLIER = Path("reports/benchmarks/mnist_tips_earlier_run.json")  # a table's run from before the records
EXTRA_SEEDS = Path("reports/benchmarks/stage_times_seeds10.json")  # from tools.run_parallel --times
SEARCH_TRIALS, SEARCH_STUDY = Path("reports/search/trials.json"), Path("data/search/study.journal")
SEARCH_TIMES = Path("reports/benchmarks/stage_times_search.json")  # the re-runs' and final models' runs
THROUGHPUT = [sys.executable, "-m", "benchmarks.throughput"]
ONE_THREAD = dict(os.environ, TF_NUM_INTRAOP_THREADS="1", TF_NUM_INTEROP_THREADS="1")
RERUN_SET = "mnist_tips.variants.noisy_dropout.learning_rate=0.002"
UNIT_PAIRS = {"fashion_cv": ("fashion_cv@dense64-0", "fashion_cv@dense256x2_dropout02-0"),
              "mnist_3x689": ("mnist_tips@crossentropy_sigmoid-0", "mnist_tips@crossentropy_sigmoid-1")}
say = functools.partial(print, "[benchmarks]", file=sys.stderr, flush=True)


def run(command: list[str], check: bool = True, **options) -> subprocess.CompletedProcess:
    """subprocess.run, timed (`.seconds`), stdout and stderr together in `.output`; a RuntimeError if it fails."""
    start = time.perf_counter()
    done = subprocess.run(command, capture_output=True, text=True, **options)
    done.seconds, done.output = time.perf_counter() - start, done.stdout + done.stderr
    if check and done.returncode:
        raise RuntimeError(f"{' '.join(command)} exited {done.returncode}:\n{done.output[-3000:]}")
    return done


def at_once(commands: list[list[str]], side_by_side: bool = True, **options) -> list[subprocess.CompletedProcess]:
    with ThreadPoolExecutor(len(commands) if side_by_side else 1) as pool:
        return list(pool.map(lambda command: run(command, **options), commands))


def timed(command: list[str], repeats: int = 3) -> dict:
    runs = [run(command) for _ in range(repeats)]
    return {"command": " ".join(command), "median_s": round(statistics.median(r.seconds for r in runs), 2),
            "runs_s": [round(r.seconds, 2) for r in runs], "output_tail": runs[-1].output.strip().splitlines()[-1:]}


def result(done: subprocess.CompletedProcess) -> dict:
    return json.loads(done.stdout.splitlines()[-1])  # benchmarks.throughput's last line, after Keras's output


@functools.cache
def pipeline() -> dict:
    """dvc.yaml's stages by name, with their commands and outputs as DVC resolves them."""
    with Repo(".") as repo:
        return {stage.addressing: stage for stage in repo.index.stages}


def scratch_command(stage: str, scratch: Path) -> list[str]:
    """The stage's command in dvc.yaml with its outputs moved under `scratch`: run, it leaves the project alone."""
    moved = {out.def_path: scratch / out.def_path for out in pipeline()[stage].outs}
    for path in moved.values():
        path.parent.mkdir(parents=True, exist_ok=True)
    words = [str(moved.get(word, word)) for word in shlex.split(pipeline()[stage].cmd)]
    if parse_unit(stage):  # a unit's command names no file: it finds them from its stage name
        files = unit_files(stage)
        words += ["--stage", stage, "--out", str(scratch / files["out"])]
        words += ["--model", str(scratch / files["model"])] if files["model"] else []
    return [sys.executable if words[0] == "python" else words[0], *words[1:]]


def up_to_date(required: bool = False) -> bool:
    fresh = run(["dvc", "status", "--quiet"], check=False).returncode == 0
    if required and not fresh:  # `dvc repro` or an experiment would train what is missing
        raise RuntimeError("the pipeline is not up to date (dvc status): finish `dvc repro` first")
    return fresh


def section_matmul(args, data) -> dict:
    """the machine's float32 matrix-multiply rate, the yardstick for achieved GFLOP/s"""
    return result(run([*THROUGHPUT, "--matmul"]))


def section_throughput(args, data) -> dict:
    """images/s of each model family, our training code against the plain port, each in a fresh process"""
    results = {f: entry for f, entry in data.get("throughput", {}).items() if f not in args.families}  # kept
    for family in (f for f in FAMILIES if f in args.families):
        runs = {"plain": [], "ours": []}
        for impl in [impl for _ in range(args.repeats) for impl in runs]:  # alternating, so drift hits both
            say(f"throughput: {family} {impl}")
            runs[impl].append(result(run([*THROUGHPUT, "--family", family, "--impl", impl, "--epochs",
                                          str(FAMILIES[family][2])])))
        best = {impl: max(found, key=lambda r: r["images_per_s"]) for impl, found in runs.items()}
        results[family] = {"variant": FAMILIES[family][1] or "cnn", **best, "repeats": args.repeats,
                           "ratio": round(best["ours"]["images_per_s"] / best["plain"]["images_per_s"], 2),
                           "measured": now_iso()}
    return results


def section_parallel(args, data) -> dict:
    """the dense families on the default threads, on one thread, and two one-thread processes at once"""
    results = {}
    for family in ("fashion_dense64", "fashion_dense256x2"):
        command = [*THROUGHPUT, "--family", family, "--impl", "ours", "--epochs", str(FAMILIES[family][2])]
        pair = at_once([command] * 2, env=ONE_THREAD)
        results[family] = {"default_threads_images_per_s": result(run(command))["images_per_s"],
                           "one_thread_images_per_s": result(run(command, env=ONE_THREAD))["images_per_s"],
                           "two_side_by_side_images_per_s": round(sum(result(d)["images_per_s"] for d in pair), 1)}
    return results


def section_units(args, data) -> dict:
    """two whole units (dvc.yaml's commands) one after the other, then side by side: what --workers 2 gains"""
    results = {}
    for family, units in UNIT_PAIRS.items():
        seconds, written = {}, []
        with tempfile.TemporaryDirectory() as tmp:
            for mode, scratch in ((mode, Path(tmp, mode)) for mode in ("one_after_the_other", "side_by_side")):
                say(f"units: {', '.join(units)} {mode.replace('_', ' ')}")
                start = time.perf_counter()
                at_once([scratch_command(unit, scratch) for unit in units], side_by_side=mode == "side_by_side")
                seconds[f"{mode}_s"] = round(time.perf_counter() - start, 1)
                written.append({p.relative_to(scratch): p.read_bytes() for p in scratch.rglob("*") if p.is_file()})
        results[family] = {**seconds, "units": list(units), "identical_results": written[0] == written[1],
                           "speedup": round(seconds["one_after_the_other_s"] / seconds["side_by_side_s"], 2)}
    return results


def section_dvc(args, data) -> dict:
    """a no-op `dvc repro`, `dvc status`, `dvc exp show`, `dvc metrics show`, median of 3"""
    found = {"pipeline_up_to_date": up_to_date(), "stages": len(pipeline()), "status": timed(["dvc", "status"]),
             "exp_show": timed(["dvc", "exp", "show", "--no-pager"]), "metrics_show": timed(["dvc", "metrics", "show"])}
    if found["pipeline_up_to_date"]:  # otherwise `dvc repro` would train what is out of date, not time a no-op
        found["repro_noop"] = timed(["dvc", "repro"])
    return found


def section_rerun(args, data) -> dict:
    """`dvc exp run --temp` after one MNIST variant's learning rate changes: its wall time, what it ran"""
    up_to_date(required=True)
    try:
        done = run(["dvc", "exp", "run", "--temp", "--name", f"bench-rerun-{os.getpid()}", "-S", RERUN_SET])
    finally:
        run(["dvc", "exp", "remove", f"bench-rerun-{os.getpid()}"], check=False)
    return {"set": RERUN_SET, "wall_s": round(done.seconds, 1), "stages_run": ran_stages(done.output),
            "stages_skipped": len(SKIPPED.findall(done.output))}


def section_memory(args, data) -> dict:
    """peak resident memory of each training family (from throughput) and of the table stages, run for real"""
    found = {family: entry["ours"]["peak_rss_mb"] for family, entry in data.get("throughput", {}).items()}
    with tempfile.TemporaryDirectory() as tmp:
        for name in ("mnist_tips_table", "fashion_table"):
            done = run(["/usr/bin/time", "-f", "%M", *scratch_command(name, Path(tmp))], check=False)
            if done.returncode:  # e.g. a table whose runs are not all there yet
                say(f"memory: {name} failed, not measured: {done.stderr.strip().splitlines()[-2:]}")
            else:
                found[name] = round(int(done.stderr.strip().splitlines()[-1]) / 1024, 1)  # %M: kilobytes
    return found


def section_scheduler(args, data) -> dict:
    """what tools.run_parallel adds per stage: a Dask task's round trip, an up-to-date --single-item"""
    from distributed import Client, LocalCluster  # Dask, for this section only

    up_to_date(required=True)
    start = time.perf_counter()
    with LocalCluster(n_workers=2, threads_per_worker=1, dashboard_address=None) as cluster, Client(cluster) as client:
        started = time.perf_counter() - start
        trips = timeit.repeat(lambda: client.submit(time.sleep, 0, pure=False).result(), number=1, repeat=30)
    unit = next(name for name in pipeline() if name.startswith("fashion_cv@"))
    return {"cluster_start_s": round(started, 2), "task_round_trip_ms": round(1000 * statistics.median(trips), 1),
            "single_item_up_to_date": timed([sys.executable, "-m", "dvc", "--wait-for-lock", "repro", "--single-item",
                                             unit]), "stages": len(pipeline()),
            "run_with_nothing_to_do": timed([sys.executable, "-m", "tools.run_parallel", "--workers", "2"], repeats=1)}


def section_quick(args, data) -> dict:
    """the README's quick look (`python -m tools.smoke DIR && cd DIR && dvc repro`), end to end"""
    with tempfile.TemporaryDirectory() as tmp:
        made = run([sys.executable, "-m", "tools.smoke", f"{tmp}/quick"]).seconds
        done = run([sys.executable, "-m", "dvc", "repro"], cwd=f"{tmp}/quick")
        report = Path(tmp, "quick", "reports", "README.md").is_file()
        # Its disk use as DVC's cache links it (a file and its cached copy one file), and as copies would be.
        linked, copies = (disk_bytes(Path(tmp, "quick"), *flag) for flag in ((), ("--count-links",)))
    return {"wall_s": round(made + done.seconds, 1), "project_s": round(made, 1), "report_written": report,
            "disk_linked_bytes": linked, "disk_as_copies_bytes": copies,
            "stages_run": len(ran_stages(done.output)),
            "mirror": "DATASET_MIRROR" if os.environ.get("DATASET_MIRROR") else "public locations"}


def disk_bytes(path: Path, *flags: str) -> int:
    return int(run(["du", "-s", "--block-size=1", *flags, str(path)]).stdout.split()[0])


def section_disk(args, data) -> dict:
    """what command 1 needs on disk: the virtual environment, the prepared data and the models (`du`)"""
    venv = Path(sys.prefix)
    return {"venv_bytes": disk_bytes(venv), **{f"{name}_bytes": disk_bytes(Path(name)) for name in ("data", "models")},
            "measured": now_iso()}


def section_tests(args, data) -> dict:
    """the README's test command on a clean clone of HEAD (the pip install not timed; needs DATASET_MIRROR)"""
    commit = run(["git", "rev-parse", "HEAD"]).stdout.strip()
    with tempfile.TemporaryDirectory() as tmp:
        run(["git", "clone", "-q", str(Path.cwd()), f"{tmp}/clone"])
        scratch, peak, ended = Path(tmp, "tmp"), [0], threading.Event()
        scratch.mkdir()

        def sample():  # the temporary folder's size every 10 s: what the tests need there at the most
            while not ended.wait(10):
                peak[0] = max(peak[0], disk_bytes(scratch))
        sampler = threading.Thread(target=sample, daemon=True)
        sampler.start()
        try:
            done = run([sys.executable, "-m", "pytest"], cwd=f"{tmp}/clone", env={**os.environ, "TMPDIR": str(scratch)})
        finally:
            ended.set()
            sampler.join()
    summary, workers = done.stdout.strip().splitlines()[-1], re.search(r"(\d+) workers \[", done.stdout)
    return {"commit": commit, "wall_s": round(done.seconds, 1), "summary": summary.strip("= "), "measured": now_iso(),
            "tmp_peak_bytes": peak[0],
            **{kind: int(n) for n, kind in re.findall(r"(\d+) (passed|failed|skipped|errors?)", summary)},
            "workers": int(workers[1]) if workers else 1}


def busy_wall(records: dict[str, dict]) -> dict:
    """The time at least one stage ran (each `finished` at an ISO time after `seconds`): the union of their
    intervals, so a run resumed over several sessions counts its sessions, not the hours between them."""
    ends = sorted((end - r["seconds"], end) for r in records.values()
                  for end in [dt.datetime.fromisoformat(r["finished"]).timestamp()])
    total, reach = 0.0, float("-inf")  # reach: the latest end so far; count only what lies past it
    for start, end in ends:
        total, reach = total + max(0.0, end - max(start, reach)), max(reach, end)
    return {"stages": len(records), "busy_seconds": round(total, 1),
            "stage_seconds": round(sum(r["seconds"] for r in records.values()), 1)}


def records_summary(path: Path) -> dict:
    """A stage-times file: busy_wall, the worker counts, the seeds trained, and its stages per table and per kind."""
    log, tables, kinds = Records(path), {}, {}
    records = log.stages
    for name, record in sorted(records.items()):
        tables.setdefault(record["table"], {})[name] = record
        kinds.setdefault(name.split("@")[0], []).append(record["seconds"])
    return {**busy_wall(records), "file": str(path), "runs": log.runs(), "stage_names": sorted(records),
            "workers": sorted({r.get("side_by_side", 1) for r in records.values()}),
            "seeds": sorted({unit["seed"] for unit in map(parse_unit, map(current_name, records)) if unit}),
            "tables": {table: {"stages": len(group), "seconds": round(sum(r["seconds"] for r in group.values()), 1),
                               "slowest": max(((n, r["seconds"]) for n, r in group.items()), key=lambda s: s[1]),
                               "side_by_side": sum(r.get("side_by_side", 1) > 1 for r in group.values())}
                       for table, group in tables.items()},
            "kinds": {kind: {"stages": len(s), "seconds": round(sum(s), 1), "median_s": round(statistics.median(s), 1),
                             "min_s": min(s), "max_s": max(s)} for kind, s in kinds.items()}}


def gpu_runs() -> list[dict]:
    """The tools.run_variants files (reports/*.json) from a machine whose devices are not the CPU."""
    found = []
    for path, data in ((path, json.loads(path.read_text())) for path in sorted(Path("reports").glob("*.json"))):
        if "runs" in data and any(not device.startswith("cpu") for device in data.get("devices", [])):
            table, runs, seeds = data.get("post", "mnist_tips"), data["runs"], len({r["seed"] for r in data["runs"]})
            found.append({"file": str(path), "table": table, "backend": data["backend"], "devices": data["devices"],
                          "seeds": seeds, "seconds": round(sum(r["seconds"] for r in runs), 1),
                          "what": f"{table} table, {len(runs)} units ({len({r['variant'] for r in runs})} variants x "
                                  f"{seeds} seeds), tools.run_variants"})
    return found


def search_summary(trials_file: Path = SEARCH_TRIALS, study_file: Path = SEARCH_STUDY,
                   times_file: Path = SEARCH_TIMES) -> dict:
    """The search's recorded trials (stages/search.py): their seconds, how many were pruned, and, from the
    study's own start and end times, its wall time from the first trial's start to the last one's end; then
    its best trials' re-runs and its winner's final models (`tools.run_parallel --times`): each kind's
    stages and median seconds, and the runs' wall time."""
    if not trials_file.is_file():
        return {}
    trials = json.loads(trials_file.read_text())["trials"]
    found = {"trials": len(trials), "pruned": sum(t["state"] == "pruned" for t in trials), "file": str(trials_file),
             "workers": load_yaml(Path("params.yaml"))["search"]["workers"],
             **{f"{state}_median_s": round(statistics.median(seconds), 1) for state in ("complete", "pruned")
                if (seconds := [t["seconds"] for t in trials if t["state"] == state])},
             "mean_s": round(statistics.fmean(t["seconds"] for t in trials), 1),
             "trial_seconds": round(sum(t["seconds"] for t in trials), 1)}
    if study_file.is_file():
        done = [t for t in read_study(study_file).trials if t.datetime_complete]
        found["wall_s"] = round((max(t.datetime_complete for t in done) - min(t.datetime_start for t in done))
                                .total_seconds(), 1)
    if times_file.is_file():
        records = Records(times_file)
        for kind in ("search_cv", "search_final"):
            seconds = [e["seconds"] for stage, e in records.stages.items() if stage.split("@")[0] == kind]
            if seconds:
                found[kind] = {"stages": len(seconds), "median_s": round(statistics.median(seconds), 1)}
        found["reruns_wall_s"] = round(sum(run["wall_seconds"] for run in records.runs()), 1)
        found["reruns_runs"] = len(records.runs())  # a run stopped and started again is one more
        found["reruns_file"] = str(times_file)
    return found


SECTIONS = {name[8:]: section for name, section in globals().items() if name.startswith("section_")}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter,
                                     epilog="\n".join(f"{name:>10}: {fn.__doc__}" for name, fn in SECTIONS.items()))
    parser.add_argument("--sections", type=lambda s: s.split(","), default=list(SECTIONS), help="comma-separated")
    parser.add_argument("--repeats", type=int, default=1, help="throughput runs per family and implementation")
    parser.add_argument("--families", type=lambda s: s.split(","), default=list(FAMILIES), help="throughput: these")
    args = parser.parse_args()
    for asked, allowed in ((args.sections, SECTIONS), (args.families, FAMILIES)):
        if set(asked) - set(allowed) - {""}:
            parser.error(f"unknown {sorted(set(asked) - set(allowed))}; allowed: {', '.join(allowed)}")
    data = json.loads(OUT_JSON.read_text()) if OUT_JSON.is_file() else {}
    for name in (name for name in SECTIONS if name in args.sections):
        say(f"{name}: {SECTIONS[name].__doc__}")
        data[name] = SECTIONS[name](args, data)
        write_json(OUT_JSON, data)  # a later section's failure keeps this one's numbers
    for key, path in (("stage_times", render.GOALS["reproduction"]["records"]),
                      ("parallel_run", render.GOALS["parallel"]["records"]), ("extra_seeds", EXTRA_SEEDS)):
        data[key] = records_summary(Path(path)) if Path(path).is_file() else {}
    if EARLIER.is_file() and data["stage_times"]:
        earlier = json.loads(EARLIER.read_text())
        data["stage_times"]["earlier"] = {**earlier, "file": str(EARLIER),
                                          "table": table_of(next(iter(earlier["training_seconds_per_unit"])))}
    data.update(search=search_summary() or data.get("search", {}))  # the study file may not be in this clone
    data.update(training_units=sorted(name for name in pipeline() if parse_unit(name)), gpu=gpu_runs(),
                reproduction_tflop=reproduction_tflop(), written=now_iso(),
                machine=f"{platform.node()}, {os.cpu_count()} cores, Python {platform.python_version()}")
    write_json(OUT_JSON, data)
    render.write(data)
    say(f"wrote {render.OUT_MD} and {OUT_JSON}")


if __name__ == "__main__":
    main()
