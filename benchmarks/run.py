"""The benchmark harness: measure, then write reports/benchmarks.md and reports/benchmarks.json.

    python -m benchmarks.run                       # every section (about 15 minutes on 2 cores)
    python -m benchmarks.run --sections dvc,memory # some; the others keep their last results
    python -m benchmarks.run --sections throughput --families mnist_3x689,mnist_11x689

Sections:
  throughput  images/s of each model family, our stage code against a plain Keras script doing
              the identical training, each in a fresh process, measured in the same run
  matmul      the machine's float32 matrix-multiply rate, the yardstick for achieved GFLOP/s
  parallel    thread settings and two units side by side, for the dense families
  units       two whole stage units one after the other and side by side (default threads):
              the gain of `tools.run_parallel --workers 2`, and whether results stay the same
  dvc         a no-op `dvc repro`, `dvc exp show`, `dvc metrics show` (median of 3)
  rerun       `dvc exp run --temp` after one MNIST variant's learning rate changes: wall time
              and how many stages ran
  scheduler   what tools.run_parallel adds per stage: a Dask task's round trip on a LocalCluster
              and `dvc repro --single-item` of an up-to-date stage (DVC's start and check)
  memory      peak resident memory of each training family (from the throughput runs) and of
              the table stages, run for real into a scratch folder
  quick       the README's quick look (`python -m tools.smoke DIR && cd DIR && dvc repro`),
              end to end
  tests       the README's test command (`python -m pytest`, as pytest.ini sets it up) on a
              clean clone of the committed HEAD, in this environment (the pip install is not
              timed); needs DATASET_MIRROR like the tests, about 12 minutes
The wall time of each table comes from reports/benchmarks/stage_times.json, which
`python -m benchmarks.reproduce` (dvc repro, timed) keeps. GPU timings, measured on a lent
machine with Keras 3 on JAX, are read from reports/benchmarks/gpu*.json and marked as such.
Run it on an idle machine: anything else running skews every figure.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
import re
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from benchmarks.reproduce import Records, seed_of, table_of
from benchmarks.throughput import FAMILIES
from stages.common import atomic_path, write_json
from stages.layout import FASHION_RUNS, fashion_cv_run

OUT_JSON = Path("reports/benchmarks.json")
OUT_MD = Path("reports/benchmarks.md")
STAGE_TIMES = Path("reports/benchmarks/stage_times.json")
SECTIONS = ("matmul", "throughput", "parallel", "units", "dvc", "rerun", "memory", "scheduler", "quick", "tests")
EPOCHS = {"mnist_3x689": 3, "mnist_11x689": 3, "fashion_dense64": 5, "fashion_dense256x2": 4, "fashion_cnn": 3}
RERUN_SET = "mnist_tips.variants.noisy_dropout.learning_rate=0.002"
GOALS = {"fashion_dense64": 2.0, "fashion_dense256x2": 2.0, "mnist_3x689": 1.0, "mnist_11x689": 1.0, "fashion_cnn": 1.0}


def say(message: str) -> None:
    print(f"[benchmarks] {message}", file=sys.stderr, flush=True)


def python_json(*args: str, env: dict | None = None) -> dict:
    """Run `python -m benchmarks.throughput ARGS` and return the JSON of its last stdout line."""
    done = subprocess.run([sys.executable, "-m", "benchmarks.throughput", *args], capture_output=True, text=True, env=env)
    if done.returncode:
        raise RuntimeError(f"benchmarks.throughput {' '.join(args)} failed:\n{done.stderr[-2000:]}")
    return last_json(done.stdout)


def last_json(stdout: str) -> dict:
    """benchmarks.throughput prints its result as the last line, after Keras's own output."""
    return json.loads(stdout.strip().splitlines()[-1])


def stage_names() -> list[str]:
    """Every stage of the pipeline, as `dvc stage list` names them."""
    return subprocess.run(["dvc", "stage", "list", "--name-only"], capture_output=True, text=True).stdout.split()


def timed(command: list[str], repeats: int = 3) -> dict:
    seconds, output = [], ""
    for _ in range(repeats):
        start = time.perf_counter()
        done = subprocess.run(command, capture_output=True, text=True)
        seconds.append(time.perf_counter() - start)
        if done.returncode:
            raise RuntimeError(f"{' '.join(command)} exited {done.returncode}:\n{done.stderr[-2000:]}")
        output = done.stdout + done.stderr
    return {"command": " ".join(command), "median_s": round(statistics.median(seconds), 2), "runs_s": [round(s, 2) for s in seconds], "output_tail": output.strip().splitlines()[-1:] }


def section_matmul() -> dict:
    say("matmul: float32 2048 x 2048 x 2048, 10 repeats")
    return python_json("--matmul")


def section_throughput(repeats: int, families: list[str], earlier: dict) -> dict:
    results = {family: entry for family, entry in earlier.items() if family not in families}  # kept as measured before
    for family, epochs in EPOCHS.items():
        if family not in families:
            continue
        runs = {"plain": [], "ours": []}
        for _ in range(repeats):
            for impl in ("plain", "ours"):  # alternate, so drift in machine speed hits both
                say(f"throughput: {family} {impl}, {epochs} epochs")
                runs[impl].append(python_json("--family", family, "--impl", impl, "--epochs", str(epochs)))
        best = {impl: max(r, key=lambda r: r["images_per_s"]) for impl, r in runs.items()}
        results[family] = {
            "variant": FAMILIES[family][1] or "cnn",
            "plain": best["plain"],
            "ours": best["ours"],
            "ratio": round(best["ours"]["images_per_s"] / best["plain"]["images_per_s"], 2),
            "repeats": repeats,
            "measured": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
        }
        say(f"throughput: {family} ours/plain = {results[family]['ratio']}x")
    return results


ONE_THREAD = {"TF_NUM_INTRAOP_THREADS": "1", "TF_NUM_INTEROP_THREADS": "1"}


def section_parallel() -> dict:
    """Thread settings and side-by-side units, by measurement: one unit with TensorFlow's default
    threads (one per core), one unit on one thread, and two one-thread units at once."""
    results = {}
    for family in ("fashion_dense64", "fashion_dense256x2"):
        args = ["--family", family, "--impl", "ours", "--epochs", str(EPOCHS[family])]
        say(f"parallel: {family}, default threads / one thread / two one-thread processes at once")
        default = python_json(*args)
        single = python_json(*args, env=dict(os.environ, **ONE_THREAD))
        procs = [subprocess.Popen([sys.executable, "-m", "benchmarks.throughput", *args], stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True, env=dict(os.environ, **ONE_THREAD)) for _ in range(2)]
        pair = [last_json(p.communicate()[0]) for p in procs]
        results[family] = {
            "default_threads_images_per_s": default["images_per_s"],
            "one_thread_images_per_s": single["images_per_s"],
            "two_side_by_side_images_per_s": round(sum(r["images_per_s"] for r in pair), 1),
        }
    return results


# Two real units of a table, as their stages run them (TensorFlow's default threads).
UNIT_PAIRS = {
    "fashion_dense64": [["stages.fashion_cv", "--variant", "dense64", "--seed", "0", "--fold", str(fold), "--data", "data/prepared/fashion_dense.npz"] for fold in (0, 1)],
    "fashion_dense256x2": [["stages.fashion_cv", "--variant", "dense256x2_dropout02", "--seed", "0", "--fold", str(fold), "--data", "data/prepared/fashion_dense.npz"] for fold in (0, 1)],
    "mnist_3x689": [["stages.mnist_tips", "--variant", "crossentropy_sigmoid", "--seed", str(seed), "--data", "data/prepared/mnist_tips.npz"] for seed in (0, 1)],
}


def _files(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def section_units() -> dict:
    """What `tools.run_parallel --workers 2` gains: two whole units of a table one after the other,
    then side by side, each a stage process with its default threads; and whether the results of
    the two ways are the same bytes."""
    results = {}
    for family, units in UNIT_PAIRS.items():
        with tempfile.TemporaryDirectory() as tmp:
            runs = {}
            for mode in ("one_after_the_other", "side_by_side"):
                say(f"units: {family}, two units {mode.replace('_', ' ')}")
                commands = [[sys.executable, "-m", *unit, "--out", f"{tmp}/{mode}/{i}"] for i, unit in enumerate(units)]
                start = time.perf_counter()
                if mode == "side_by_side":
                    procs = [subprocess.Popen(c, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True) for c in commands]
                    errors = [p.communicate()[1] if p.wait() else "" for p in procs]
                else:
                    errors = [done.stderr if (done := subprocess.run(c, capture_output=True, text=True)).returncode else "" for c in commands]
                runs[mode] = round(time.perf_counter() - start, 1)
                if any(errors):
                    raise RuntimeError(f"a unit of {family} failed:\n{next(e for e in errors if e)[-2000:]}")
            same = all(_files(Path(tmp, "one_after_the_other", str(i))) == _files(Path(tmp, "side_by_side", str(i))) for i in range(len(units)))
        results[family] = {**{f"{mode}_s": s for mode, s in runs.items()}, "speedup": round(runs["one_after_the_other"] / runs["side_by_side"], 2),
                           "identical_results": same, "units": [" ".join(a for a in u if a not in ("--data", "--prepared") and not a.startswith("data/")) for u in units]}
        say(f"units: {family} {results[family]}")
    return results


def require_up_to_date(what: str) -> None:
    """A `dvc repro` or experiment on an out-of-date pipeline would train what is missing."""
    if subprocess.run(["dvc", "status", "--quiet"], capture_output=True).returncode != 0:
        raise RuntimeError(f"the pipeline is not up to date (dvc status); finish `dvc repro` before {what}")


def section_dvc() -> dict:
    say("dvc: no-op repro, exp show, metrics show")
    up_to_date = subprocess.run(["dvc", "status", "--quiet"], capture_output=True).returncode == 0
    result = {
        "pipeline_up_to_date": up_to_date,
        "stages": len(stage_names()),
        "status": timed(["dvc", "status"]),
        "exp_show": timed(["dvc", "exp", "show", "--no-pager" if _has_no_pager() else "--csv"]),
        "metrics_show": timed(["dvc", "metrics", "show"]),
    }
    if up_to_date:  # otherwise `dvc repro` would train what is out of date, not time a no-op
        result["repro_noop"] = timed(["dvc", "repro"])
    return result


def _has_no_pager() -> bool:
    return "--no-pager" in subprocess.run(["dvc", "exp", "show", "--help"], capture_output=True, text=True).stdout


def section_rerun() -> dict:
    """Change one variant's param in a temporary experiment; count what DVC reran."""
    require_up_to_date("timing a one-variant rerun")
    name = f"bench-rerun-{os.getpid()}"
    say(f"rerun: dvc exp run --temp -S {RERUN_SET}")
    start = time.perf_counter()
    done = subprocess.run(["dvc", "exp", "run", "--temp", "--name", name, "-S", RERUN_SET], capture_output=True, text=True)
    seconds = time.perf_counter() - start
    subprocess.run(["dvc", "exp", "remove", name], capture_output=True)
    if done.returncode:
        raise RuntimeError(f"dvc exp run failed:\n{done.stdout[-2000:]}\n{done.stderr[-2000:]}")
    output = done.stdout + done.stderr
    ran = re.findall(r"Running stage '([^']+)'", output)
    return {"set": RERUN_SET, "wall_s": round(seconds, 1), "stages_run": ran, "stages_skipped": len(re.findall(r"didn't change, skipping", output))}


def section_quick() -> dict:
    """The README's quick look, as a newcomer runs it: `python -m tools.smoke DIR`, then
    `dvc repro` there (the datasets from DATASET_MIRROR, or downloaded), timed end to end."""
    say("quick: python -m tools.smoke DIR && cd DIR && dvc repro")
    with tempfile.TemporaryDirectory() as tmp:
        project = Path(tmp) / "quick"
        start = time.perf_counter()
        subprocess.run([sys.executable, "-m", "tools.smoke", str(project)], check=True, capture_output=True)
        made = time.perf_counter() - start
        done = subprocess.run([sys.executable, "-m", "dvc", "repro"], cwd=project, capture_output=True, text=True)
        seconds = time.perf_counter() - start
        if done.returncode:
            raise RuntimeError(f"the quick look failed:\n{done.stdout[-2000:]}\n{done.stderr[-2000:]}")
        ran = re.findall(r"Running stage '([^']+)'", done.stdout + done.stderr)
        report = (project / "reports" / "README.md").is_file()
    return {"wall_s": round(seconds, 1), "project_s": round(made, 1), "stages_run": len(ran), "report_written": report,
            "mirror": "DATASET_MIRROR" if os.environ.get("DATASET_MIRROR") else "public locations"}


def section_tests() -> dict:
    """The README's test command on a clean clone of HEAD (what CI runs after its set-up),
    timed end to end, with pytest's own count and time."""
    commit = subprocess.run(["git", "rev-parse", "HEAD"], capture_output=True, text=True, check=True).stdout.strip()
    say(f"tests: python -m pytest on a clean clone of {commit[:12]}")
    with tempfile.TemporaryDirectory() as tmp:
        clone = Path(tmp) / "clone"
        subprocess.run(["git", "clone", "-q", str(Path.cwd()), str(clone)], check=True)
        start = time.perf_counter()
        done = subprocess.run([sys.executable, "-m", "pytest"], cwd=clone, capture_output=True, text=True)
        seconds = time.perf_counter() - start
    summary = done.stdout.strip().splitlines()[-1] if done.stdout.strip() else ""
    counts = {kind: int(n) for n, kind in re.findall(r"(\d+) (passed|failed|skipped|errors?)", summary)}
    if done.returncode or not counts.get("passed"):
        raise RuntimeError(f"the tests failed ({done.returncode}):\n{done.stdout[-3000:]}\n{done.stderr[-2000:]}")
    workers = re.search(r"(\d+) workers \[", done.stdout)
    return {"commit": commit, "wall_s": round(seconds, 1), "summary": summary.strip("= "), **counts,
            "workers": int(workers.group(1)) if workers else 1, "measured": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds")}


def section_scheduler() -> dict:
    """The cost tools.run_parallel adds to each stage, on the up-to-date pipeline: the Dask
    round trip of an empty task, `dvc --wait-for-lock repro --single-item` of an up-to-date unit
    (DVC loads the pipeline and checks the stage), and a whole run with nothing to do."""
    from distributed import Client, LocalCluster

    require_up_to_date("timing the scheduler's overhead")
    say("scheduler: Dask task round trip, dvc repro --single-item of an up-to-date stage")
    start = time.perf_counter()
    with LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None) as cluster, Client(cluster) as client:
        started = time.perf_counter() - start
        trips = []
        for _ in range(30):
            t0 = time.perf_counter()
            client.submit(time.sleep, 0, pure=False).result()
            trips.append(time.perf_counter() - t0)
    listed = stage_names()
    unit = next(n for n in listed if n.startswith("fashion_cv@"))
    single = timed([sys.executable, "-m", "dvc", "--wait-for-lock", "repro", "--single-item", unit])
    nothing = timed([sys.executable, "-m", "tools.run_parallel", "--workers", "2"], repeats=1)
    return {"cluster_start_s": round(started, 2), "task_round_trip_ms": round(1000 * statistics.median(trips), 1),
            "single_item_up_to_date": single, "run_with_nothing_to_do": nothing, "stages": len(listed)}


def section_memory(throughput: dict) -> dict:
    result = {family: entry["ours"]["peak_rss_mb"] for family, entry in throughput.items()}
    with tempfile.TemporaryDirectory() as tmp:
        commands = {
            "fashion_table": ["python", "-m", "stages.fashion_table", "--runs", "reports/runs/fashion", "--reference", "reference/fashion.yaml", "--claims", "claims.yaml", "--metrics", f"{tmp}/m.json", "--table", f"{tmp}/t.md", "--figures", f"{tmp}/fig", "--curves", f"{tmp}/c.csv", "--predictions", f"{tmp}/p"],
            "mnist_tips_table": ["python", "-m", "stages.mnist_tips_table", "--runs", "reports/runs/mnist_tips", "--reference", "reference/mnist_tips.yaml", "--claims", "claims.yaml", "--metrics", f"{tmp}/mm.json", "--table", f"{tmp}/mt.md", "--curves", f"{tmp}/mc.csv", "--other-backend", "reports/mnist_tips_jax_h100.json"],
        }
        for name, command in commands.items():
            say(f"memory: {name}")
            done = subprocess.run(["/usr/bin/time", "-f", "%M", *command], capture_output=True, text=True)
            if done.returncode:  # e.g. a table whose runs are not all there yet
                say(f"memory: {name} failed, not measured: {done.stderr.strip().splitlines()[-2:]}")
                continue
            result[name] = round(int(done.stderr.strip().splitlines()[-1]) / 1024, 1)
    return result


EARLIER_MNIST = Path("reports/benchmarks/mnist_tips_earlier_run.json")
PARALLEL_TIMES = Path("reports/benchmarks/stage_times_parallel.json")  # tools.run_parallel --times
EXTRA_SEEDS_TIMES = Path("reports/benchmarks/stage_times_seeds10.json")  # seeds 3-9, tools.run_parallel --allow-missing --times


def stage_times() -> dict:
    if not STAGE_TIMES.is_file():
        return {}
    stages = json.loads(STAGE_TIMES.read_text())["stages"]
    tables: dict[str, dict] = {}
    for name, record in stages.items():
        table = tables.setdefault(record["table"], {"stages": 0, "seconds": 0.0, "slowest": ("", 0.0), "side_by_side": 0})
        table["stages"] += 1
        table["side_by_side"] += 1 if record.get("side_by_side", 1) > 1 else 0  # timed while sharing the cores (tools.run_parallel)
        table["seconds"] = round(table["seconds"] + record["seconds"], 1)
        if record["seconds"] > table["slowest"][1]:
            table["slowest"] = (name, record["seconds"])
    runs = Records(STAGE_TIMES).runs()
    earlier = json.loads(EARLIER_MNIST.read_text()) if EARLIER_MNIST.is_file() else None
    return {"tables": tables, "runs": runs, "earlier_mnist_tips": earlier, "stage_names": sorted(stages)}


def busy_wall(records: dict[str, dict]) -> dict:
    """The wall time of a run from its stages' records (each `finished` at an ISO time after
    `seconds`): the length of the union of their intervals, i.e. the time at least one stage
    was running. A run resumed over several sessions counts its sessions, not the hours between
    them; what the runner spends with no stage running (its start, the last scheduling gaps)
    is left out."""
    intervals = sorted((end - rec["seconds"], end) for rec in records.values()
                       for end in [dt.datetime.fromisoformat(rec["finished"]).timestamp()])
    total, reach = 0.0, float("-inf")  # reach: the latest end so far; count only what lies past it
    for start, end in intervals:
        if end > reach:
            total += end - max(start, reach)
            reach = end
    return {"stages": len(records), "busy_seconds": round(total, 1), "stage_seconds": round(sum(r["seconds"] for r in records.values()), 1)}


def parallel_times() -> dict:
    """The full reproduction through `tools.run_parallel --times` (PARALLEL_TIMES)."""
    if not PARALLEL_TIMES.is_file():
        return {}
    records = json.loads(PARALLEL_TIMES.read_text())["stages"]
    return {**runner_summary(records), "stage_names": sorted(records), "runs": Records(PARALLEL_TIMES).runs()}


def runner_summary(records: dict[str, dict]) -> dict:
    """busy_wall of a `tools.run_parallel --times` file's records, with the worker counts they ran under."""
    return {**busy_wall(records), "workers": sorted({r.get("side_by_side", 1) for r in records.values()})}


def extra_seed_times() -> dict:
    """The units that took the run from 3 seeds to 10 (`tools.run_parallel --allow-missing --times
    EXTRA_SEEDS_TIMES`, over several working sessions), per kind of stage."""
    if not EXTRA_SEEDS_TIMES.is_file():
        return {}
    records = json.loads(EXTRA_SEEDS_TIMES.read_text())["stages"]
    kinds: dict[str, list[float]] = {}
    for name, record in records.items():
        kinds.setdefault(name.split("@")[0], []).append(record["seconds"])
    return {**runner_summary(records), "seeds": sorted({s for s in map(seed_of, records) if s is not None}),
            "kinds": {kind: {"stages": len(secs), "seconds": round(sum(secs), 1), "median_s": round(statistics.median(secs), 1),
                             "min_s": min(secs), "max_s": max(secs)} for kind, secs in sorted(kinds.items())}}


def gpu_results() -> list[dict]:
    found = []
    for path in sorted(Path("reports/benchmarks").glob("gpu*.json")):
        found.append({"file": str(path), **json.loads(path.read_text())})
    jax_mnist = Path("reports/mnist_tips_jax_h100.json")
    if jax_mnist.is_file():
        data = json.loads(jax_mnist.read_text())
        found.append({"file": str(jax_mnist), "what": "MNIST tips table, 30 units (10 rows x 3 seeds), tools.run_variants", "backend": data["backend"], "devices": data["devices"], "seconds": round(sum(r["seconds"] for r in data["runs"]), 1), "units": len(data["runs"])})
    return found


def reproduction_flops(params_path: Path = Path("params.yaml")) -> dict:
    """Arithmetic of the whole reproduction, counted from params.yaml and the models' layers (the
    early-stopping variant's epochs from its committed runs): a floor on its time at the
    machine's matrix-multiply rate, whatever the implementation."""
    from benchmarks.throughput import dense_probe, forward_flops
    from stages.common import load_params
    from stages.fashion_cnn import build_cnn

    tips, fashion = load_params(params_path, "mnist_tips"), load_params(params_path, "fashion")
    n_tips, n_train = 10000, 60000
    total = {"mnist_tips": 0.0, "fashion_cv": 0.0, "fashion_final": 0.0, "fashion_cnn": 0.0}
    for variant in tips["variants"].values():
        forward = forward_flops(dense_probe(variant["hidden_units"], (784,)))
        per_run = variant["epochs"] * (3 * forward * n_tips + forward * n_tips) + 2 * forward * n_tips
        total["mnist_tips"] += per_run * len(tips["seeds"])
    k = fashion["cross_validation"]["k"]
    fold_train, fold_val = n_train - n_train // k, n_train // k
    for name, variant in fashion["variants"].items():
        forward = forward_flops(dense_probe(variant["hidden_units"], (28, 28)))
        for seed in fashion["seeds"]:
            for fold in fashion["cross_validation"]["folds"]:
                epochs = fashion["training"]["epochs"]
                run = fashion_cv_run(FASHION_RUNS, name, seed, fold) / "metrics.json"
                if variant.get("early_stopping_patience") and run.is_file():
                    epochs = json.loads(run.read_text())["epochs_run"]
                total["fashion_cv"] += epochs * (3 * forward * fold_train + forward * fold_val)
    forward = forward_flops(dense_probe(fashion["final"]["model"]["hidden_units"], (28, 28)))
    total["fashion_final"] = len(fashion["seeds"]) * fashion["final"]["epochs"] * 3 * forward * n_train
    forward = forward_flops(build_cnn())
    total["fashion_cnn"] = len(fashion["seeds"]) * fashion["cnn"]["epochs"] * (3 * forward * n_train + forward * 10000)
    return {name: round(flops / 1e12, 2) for name, flops in total.items()}


def minutes(seconds: float) -> str:
    whole = round(seconds)
    return f"{whole // 60} min {whole % 60:02d} s"


def goals(data: dict) -> list[str]:
    """The performance issue's goals, each with the figure that decides it."""
    lines = ["## Goals", "", "| goal | measured | verdict |", "|---|---|---|"]
    tp = data.get("throughput", {})
    for family, goal in GOALS.items():
        if family in tp:
            lines.append(f"| throughput {family} >= {goal}x the plain port | {tp[family]['ratio']}x | {'met' if tp[family]['ratio'] >= goal else 'missed'} |")
    st = data.get("stage_times") or {}
    tables = st.get("tables", {})
    earlier = st.get("earlier_mnist_tips")
    total = sum(t["seconds"] for t in tables.values()) + (earlier["wall_seconds"] if earlier and "mnist_tips" not in tables else 0)
    timed = set(st.get("stage_names", [])) | (set(earlier["training_seconds_per_unit"]) if earlier and "mnist_tips" not in tables else set())
    missing: dict[str, int] = {}
    for unit in {u for u in data.get("training_units", []) if (seed_of(u) or 0) < 3} - timed:  # the goal's 3 seeds
        missing[table_of(unit)] = missing.get(table_of(unit), 0) + 1
    if total:
        verdict = "met" if total <= 5400 else "missed"
        if any(missing.values()):
            verdict = f"incomplete: {', '.join(f'{n} {t} training units' for t, n in missing.items() if n)} not timed yet"
        shared = sum(t.get("side_by_side", 0) for t in tables.values())
        how = f"sum of the tables below; {shared} stages of it timed side by side, so the sum overstates the wall time" if shared else "sum of the tables below, every stage run alone"
        lines.append(f"| full reproduction, 3 seeds, <= 90 min | {minutes(total)} ({how}) | {verdict} |")
    par = data.get("parallel_run")
    if par and total:
        speedup = total / par["busy_seconds"]
        lacking = sorted(set(par["stage_names"]) - timed)
        bound = f"; a lower bound: the sequential sum lacks {len(lacking)} of these stages" if lacking else ""
        lines.append(f"| full reproduction with `tools.run_parallel --workers {'/'.join(map(str, par['workers']))}` at least 1.3x faster than `dvc repro` "
                     f"| {minutes(par['busy_seconds'])} with stages running ({par['stages']} stages, `{PARALLEL_TIMES}`) against the sequential "
                     f"{minutes(total)}: {speedup:.2f}x{bound} | {'met' if speedup >= 1.3 else 'missed'} |")
    tflop, mm = data.get("reproduction_tflop"), data.get("matmul")
    if tflop and mm:
        floor = sum(tflop.values()) * 1000 / mm["median_gflop_per_s"]
        lines.append(f"| (floor) the reproduction's {sum(tflop.values()):.0f} TFLOP at the measured {mm['median_gflop_per_s']} GFLOP/s matmul rate | {minutes(floor)} | no implementation of the same math goes below this on this machine |")
    dvc = data.get("dvc")
    if dvc:
        if "repro_noop" in dvc:
            lines.append(f"| no-op `dvc repro` < 3 s | {dvc['repro_noop']['median_s']} s | {'met' if dvc['repro_noop']['median_s'] < 3 else 'missed'} |")
        else:
            lines.append(f"| no-op `dvc repro` < 3 s | not timed: the pipeline was not up to date; `dvc status` over it took {dvc['status']['median_s']} s | open |")
        lines.append(f"| `dvc exp show` < 5 s | {dvc['exp_show']['median_s']} s | {'met' if dvc['exp_show']['median_s'] < 5 else 'missed'} |")
    fashion_gpu = [g for g in data.get("gpu", []) if g.get("table") == "fashion_cv"]
    lines.append("| GPU: Fashion-MNIST CV table, 1 seed, <= 60 s on one H100 | "
                 + (f"{fashion_gpu[0]['seconds']} s | {'met' if fashion_gpu[0]['seconds'] <= 60 else 'missed'} |" if fashion_gpu else "not measured: no GPU machine was lent to this session | open |"))
    return lines + [""]


def _epoch_ratio(entry: dict) -> str:
    if "epoch_images_per_s" not in entry["ours"] or "epoch_images_per_s" not in entry["plain"]:
        return "n/a"
    return f"{entry['ours']['epoch_images_per_s'] / entry['plain']['epoch_images_per_s']:.2f}x"


def render(data: dict) -> str:
    lines = ["# Benchmarks", "", f"Written by `python -m benchmarks.run` on {data['machine']}; raw numbers in `reports/benchmarks.json`. "
             "Throughput is the training part (before Keras's validation pass) of the fastest epoch after the first (which traces and "
             "compiles), best of the repeats; FLOPs count Dense and Conv2D multiply-adds, a training step as 3 x the forward pass.", ""]
    mm = data.get("matmul")
    if mm:
        lines += [f"Machine yardstick: float32 2048^3 matrix multiply through Keras ({mm['backend']}): {mm['median_gflop_per_s']} GFLOP/s median, {mm['best_gflop_per_s']} best.", ""]
    tp = data.get("throughput")
    if tp:
        lines += ["## Training throughput: our stage code against the plain port", "",
                  "| family (variant) | plain images/s | ours images/s | ours / plain | goal | plain GFLOP/s | ours GFLOP/s | ours % of matmul rate | whole epochs with validation, ours / plain | measured |",
                  "|---|---:|---:|---:|---:|---:|---:|---:|---:|---|"]
        for family, entry in tp.items():
            goal = GOALS[family]
            share = f"{100 * entry['ours']['gflop_per_s'] / mm['median_gflop_per_s']:.0f}%" if mm else "n/a"
            verdict = "met" if entry["ratio"] >= goal else "missed"
            lines.append(f"| {family} ({entry['variant']}) | {entry['plain']['images_per_s']:,.0f} | {entry['ours']['images_per_s']:,.0f} | {entry['ratio']}x | >= {goal}x, {verdict} | {entry['plain']['gflop_per_s']} | {entry['ours']['gflop_per_s']} | {share} | {_epoch_ratio(entry)} | {entry['measured'][:10]} |")
        lines += ["", "Epoch seconds (first epoch, then the rest): " + "; ".join(
            f"{family} plain {e['plain']['epoch_s']} ours {e['ours']['epoch_s']}" for family, e in tp.items()) + ".", ""]
        mnist = [e for f, e in tp.items() if f.startswith("mnist")]
        if mnist and mnist[0]["ours"]["validation_images"]:
            lines += ["Our MNIST stage also evaluates the 10,000 test images after every epoch (the per-epoch test curve the "
                      "plots draw, in one batch of 10,000); the post's script does not, so each of our whole epochs does a third more "
                      "arithmetic than the post's: the whole-epoch column shows that cost.", ""]
    lines += goals(data)
    par = data.get("parallel")
    if par:
        lines += ["## Threads and side-by-side units (our stage code)", "",
                  "| family | default threads (one per core) | one thread | two one-thread units at once, combined |", "|---|---:|---:|---:|"]
        for family, entry in par.items():
            lines.append(f"| {family} | {entry['default_threads_images_per_s']:,.0f} images/s | {entry['one_thread_images_per_s']:,.0f} | {entry['two_side_by_side_images_per_s']:,.0f} |")
        lines += ["", "`dvc repro` runs one stage at a time; `python -m tools.run_parallel --workers 2` runs two out-of-date stages "
                  "at a time, each a Dask task running `dvc repro --single-item`, with TensorFlow's default threads: one thread per unit (the last "
                  "column) would be faster but changes the last bits of the results, since TensorFlow splits its sums by thread count.", ""]
    units = data.get("units")
    if units:
        lines += ["## Two whole units one after the other, and side by side (what `--workers 2` gains)", "",
                  "| family | units | one after the other | side by side | speed-up | same result bytes |", "|---|---|---:|---:|---:|---|"]
        for family, entry in units.items():
            lines.append(f"| {family} | {'; '.join(entry['units'])} | {entry['one_after_the_other_s']} s | {entry['side_by_side_s']} s | {entry['speedup']}x | {'yes' if entry['identical_results'] else 'NO'} |")
        lines.append("")
    st = data.get("stage_times")
    if st and st.get("tables"):
        lines += ["## Wall time of the full reproduction, per table", "",
                  "Sum of each stage's wall time (DVC's own hashing and each process's start included) from "
                  "`reports/benchmarks/stage_times.json`, kept by `python -m benchmarks.reproduce`.", "",
                  "| table | stages | wall time | slowest stage |", "|---|---:|---:|---|"]
        total = 0.0
        for table, entry in sorted(st["tables"].items()):
            total += entry["seconds"]
            lines.append(f"| {table} | {entry['stages']} | {minutes(entry['seconds'])} | {entry['slowest'][0]} ({entry['slowest'][1]:.0f} s) |")
        lines += [f"| all | {sum(e['stages'] for e in st['tables'].values())} | {minutes(total)} | |", ""]
        earlier = st.get("earlier_mnist_tips")
        if earlier and "mnist_tips" not in st["tables"]:
            lines += [f"The MNIST tips table did not rerun here (its code is unchanged); its last full run took {minutes(earlier['wall_seconds'])} "
                      f"of wall time for {earlier['units']} units ({earlier['training_seconds_total']} s of it inside `model.fit`/`evaluate`), "
                      f"finished {earlier['finished']} ({EARLIER_MNIST}; {earlier['note']}).", ""]
        if st.get("runs"):
            lines += ["`benchmarks.reproduce` runs: " + "; ".join(
                f"{r['started']}: {minutes(r['wall_seconds'])}, {r['stages_run']} ran, {r['stages_skipped']} skipped, exit {r['exit_code']}" for r in st["runs"]) + ".", ""]
        par = data.get("parallel_run")
        if par and par.get("runs"):
            lines += [f"`tools.run_parallel` runs (`{PARALLEL_TIMES}`): " + "; ".join(
                f"{r['started']}: {minutes(r['wall_seconds'])} end to end, {r['workers']} workers, {r['stages_run']} ran, "
                f"{r['stages_up_to_date']} up to date, {r['stages_failed']} failed, exit {r['exit_code']}" for r in par["runs"]) + ".", ""]
    extra = data.get("extra_seeds")
    if extra:
        seeds = extra["seeds"]
        lines += [f"## The extra seeds ({seeds[0]}-{seeds[-1]}) of the ten-seed run", "",
                  f"`python -m tools.run_parallel --workers {'/'.join(map(str, extra['workers']))} --allow-missing --times {EXTRA_SEEDS_TIMES}` "
                  "on this 2-core machine (Keras 3 on TensorFlow, CPU), resumed over several working sessions: each stage timed "
                  "while it shared the cores with another (slower than alone: see the two units side by side above). "
                  f"{extra['stages']} stages, {minutes(extra['stage_seconds'])} summed, {minutes(extra['busy_seconds'])} with at least "
                  "one stage running (the sessions' gaps left out).", "",
                  "| stage | stages | median | fastest | slowest | summed |", "|---|---:|---:|---:|---:|---:|"]
        for kind, entry in extra["kinds"].items():
            lines.append(f"| {kind} | {entry['stages']} | {entry['median_s']:.0f} s | {entry['min_s']:.0f} s | {entry['max_s']:.0f} s | {minutes(entry['seconds'])} |")
        lines.append("")
    dvc = data.get("dvc")
    if dvc:
        state = "all up to date" if dvc["pipeline_up_to_date"] else "not all up to date, so no no-op `dvc repro` was timed"
        lines += ["## DVC commands on the full pipeline", "", f"{dvc['stages']} stages, {state}.", "",
                  "| command | median of 3 | runs |", "|---|---:|---|"]
        for key in ("repro_noop", "status", "exp_show", "metrics_show"):
            if key in dvc:
                lines.append(f"| `{dvc[key]['command']}` | {dvc[key]['median_s']} s | {dvc[key]['runs_s']} |")
        lines.append("")
    rr = data.get("rerun")
    if rr:
        lines += ["## Rerun after one variant's param changes", "",
                  f"`dvc exp run --temp -S {rr['set']}`: {rr['wall_s']} s; ran {len(rr['stages_run'])} stages "
                  f"({', '.join(rr['stages_run'])}), {rr['stages_skipped']} skipped.", ""]
    qk = data.get("quick")
    if qk:
        lines += ["## The README's quick look", "",
                  f"`python -m tools.smoke DIR && cd DIR && dvc repro` (the smoke profile, datasets from {qk['mirror']}): "
                  f"{minutes(qk['wall_s'])} end to end ({qk['project_s']} s to make the project), {qk['stages_run']} stages ran, "
                  f"report {'written' if qk['report_written'] else 'MISSING'}.", ""]
    ts = data.get("tests")
    if ts:
        lines += ["## The test suite", "",
                  f"`python -m pytest` on a clean clone of `{ts['commit'][:12]}` ({ts['workers']} pytest-xdist workers, as pytest.ini "
                  f"sets): {minutes(ts['wall_s'])} end to end; pytest said \"{ts['summary']}\".", ""]
    sch = data.get("scheduler")
    if sch:
        per_stage = sch["task_round_trip_ms"] / 1000 + sch["single_item_up_to_date"]["median_s"]
        lines += ["## What the parallel runner adds per stage", "",
                  f"`tools.run_parallel` on a LocalCluster of 2 worker processes: the cluster starts in {sch['cluster_start_s']} s; "
                  f"an empty Dask task's round trip takes {sch['task_round_trip_ms']} ms (median of 30); "
                  f"`dvc --wait-for-lock repro --single-item` of an up-to-date unit takes {sch['single_item_up_to_date']['median_s']} s "
                  f"(median of 3: DVC loads the {sch['stages']}-stage pipeline and checks the stage). So each stage costs about "
                  f"{per_stage:.1f} s on top of its own work, {per_stage * sch['stages'] / 2 / 60:.1f} min for all {sch['stages']} stages "
                  f"on 2 workers. A whole run with nothing to do (cluster start, `dvc dag`, `dvc status`) took "
                  f"{sch['run_with_nothing_to_do']['median_s']} s.", ""]
    mem = data.get("memory")
    if mem:
        heaviest = max(mem, key=mem.get)
        lines += ["## Peak resident memory", "", "| process | peak RSS |", "|---|---:|"]
        lines += [f"| {name} | {mb:,.0f} MB |" for name, mb in mem.items()]
        lines += ["", f"Heaviest: {heaviest}, {mem[heaviest]:,.0f} MB (training families: one process of our stage code on the full data).", ""]
    gpu = data.get("gpu", [])
    lines += ["## GPU (measured on a lent machine, Keras 3 on JAX; marked, not comparable with the CPU rows)", ""]
    if gpu:
        for entry in gpu:
            lines.append(f"- {entry.get('what', entry['file'])}: {entry.get('seconds', '?')} s on {entry.get('devices')} ({entry['file']})")
    else:
        lines.append("- none recorded")
    lines.append("")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sections", default=",".join(SECTIONS), help=f"comma-separated, from {', '.join(SECTIONS)}")
    parser.add_argument("--repeats", type=int, default=1, help="throughput runs per family and implementation (the best counts)")
    parser.add_argument("--families", default=",".join(EPOCHS), help="throughput: comma-separated families to measure; the others keep their last results")
    args = parser.parse_args()
    families = [f for f in args.families.split(",") if f]
    if set(families) - set(EPOCHS):
        parser.error(f"unknown families {sorted(set(families) - set(EPOCHS))}; allowed: {', '.join(EPOCHS)}")
    sections = [s for s in args.sections.split(",") if s]
    unknown = set(sections) - set(SECTIONS)
    if unknown:
        parser.error(f"unknown sections {sorted(unknown)}; allowed: {', '.join(SECTIONS)}")

    data = json.loads(OUT_JSON.read_text()) if OUT_JSON.is_file() else {}
    for entry in data.get("throughput", {}).values():  # results from before entries carried a date
        entry.setdefault("measured", data.get("written", "unknown"))
    measure = {
        "matmul": section_matmul,
        "throughput": lambda: section_throughput(args.repeats, families, data.get("throughput", {})),
        "parallel": section_parallel,
        "units": section_units,
        "dvc": section_dvc,
        "rerun": section_rerun,
        "memory": lambda: section_memory(data.get("throughput", {})),
        "scheduler": section_scheduler,
        "quick": section_quick,
        "tests": section_tests,
    }
    for section in SECTIONS:
        if section in sections:
            data[section] = measure[section]()
            write_json(OUT_JSON, data)  # a later section's failure keeps this one's numbers
    listed = stage_names()
    data["training_units"] = sorted(n for n in listed if "@" in n and table_of(n) in ("fashion", "mnist_tips"))
    data["reproduction_tflop"] = reproduction_flops()
    data["stage_times"] = stage_times()
    data["parallel_run"] = parallel_times()
    data["extra_seeds"] = extra_seed_times()
    data["gpu"] = gpu_results()
    data["machine"] = f"{platform.node()}, {os.cpu_count()} cores, Python {platform.python_version()}"
    data["written"] = dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds")
    write_json(OUT_JSON, data)
    with atomic_path(OUT_MD) as tmp:
        tmp.write_text(render(data), encoding="utf-8")
    say(f"wrote {OUT_MD} and {OUT_JSON}")


if __name__ == "__main__":
    main()
