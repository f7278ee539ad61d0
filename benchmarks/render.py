"""Render reports/benchmarks.md from reports/benchmarks.json (what benchmarks.measure wrote) and the goals in
benchmarks/goals.yaml; it measures nothing. `python -m benchmarks.render [--json FILE] [--out FILE]`"""

from __future__ import annotations

import argparse
import json
from collections import Counter
from pathlib import Path

from lib.common.core import atomic_path, load_yaml
from lib.common.paths import parse_unit, table_of
from tools.timing import current_name

GOALS = load_yaml(Path(__file__).with_name("goals.yaml"))
OUT_MD = Path("reports/benchmarks.md")
WORDS = "zero one two three four five six seven eight nine ten eleven twelve".split()


def minutes(seconds: float) -> str:
    return f"{round(seconds) // 60} min {round(seconds) % 60:02d} s"


def table(head: str, rows) -> list[str]:
    """A Markdown table: `head` is the column names joined by '|'; a trailing ':' right-aligns a column."""
    names = head.split("|")
    return [f"| {' | '.join(name.rstrip(':') for name in names)} |",
            "|" + "|".join("---:" if name.endswith(":") else "---" for name in names) + "|",
            *(f"| {' | '.join(map(str, row))} |".replace("|  |", "| |") for row in rows)]


def section(title: str, *blocks: str | list[str]) -> list[str]:
    """A heading, then its blocks (a paragraph, or a table's lines), each followed by an empty line."""
    return [f"## {title}", "", *(line for block in blocks if block for line in [*([block] if isinstance(
        block, str) else block), ""])]


def verdict(met: bool) -> str:
    return "met" if met else "missed"


def runner_runs(summary: dict) -> str:
    """The runs of a `tools.run_parallel --times` file, from its `_runs.json`."""
    return f"`tools.run_parallel` runs (`{summary.get('file')}`): " + "; ".join(
        f"{r['started']}: {minutes(r['wall_seconds'])} end to end, {r['workers']} workers, {r['stages_run']} ran, "
        f"{r['stages_up_to_date']} up to date, {r['stages_failed']} failed, exit {r['exit_code']}"
        for r in summary["runs"]) + "." if summary.get("runs") else ""


def goals(data: dict) -> list[str]:
    """Each goal of goals.yaml with the figure that decides it."""
    tp, st, rows = data.get("throughput", {}), data.get("stage_times") or {}, []
    for family, goal in GOALS["throughput"].items():
        if family in tp:
            ratio = tp[family]["ratio"]
            rows.append([f"throughput {family} >= {goal}x the plain port", f"{ratio}x", verdict(ratio >= goal)])
    tables, earlier, goal = st.get("tables", {}), st.get("earlier") or {}, GOALS["reproduction"]
    earlier = earlier if earlier.get("table") not in tables else {}  # a table that did not rerun since
    total = sum(t["seconds"] for t in tables.values()) + earlier.get("wall_seconds", 0)
    timed = set(map(current_name, [*st.get("stage_names", []), *earlier.get("training_seconds_per_unit", [])]))
    missing = Counter(table_of(u) for u in set(map(current_name, data.get("training_units", []))) - timed
                      if (unit := parse_unit(u))["seed"] < goal["seeds"]
                      and not unit["kind"].startswith("search_"))  # the search has a goal of its own
    shared = sum(t.get("side_by_side", 0) for t in tables.values())
    how = f"; {shared} stages of it timed side by side, so the sum overstates the wall time" if shared else \
        ", every stage run alone"
    if total:
        rows.append([f"full reproduction, {goal['seeds']} seeds, <= {goal['minutes']} min",
                     f"{minutes(total)} (sum of the tables below{how})", verdict(total <= 60 * goal["minutes"])])
        if missing:
            rows[-1][-1] = f"incomplete: {', '.join(f'{n} {t} training units' for t, n in sorted(missing.items()))} " \
                "not timed yet"
    if (par := data.get("parallel_run")) and total:
        speedup, lacking, goal = total / par["busy_seconds"], set(map(current_name, par["stage_names"])) - timed, \
            GOALS["parallel"]
        bound = f"; a lower bound: the sequential sum lacks {len(lacking)} of these stages" if lacking else ""
        rows.append([f"full reproduction with `tools.run_parallel --workers {'/'.join(map(str, par['workers']))}` at "
                     f"least {goal['speedup']}x faster than `dvc repro`", f"{minutes(par['busy_seconds'])} with stages "
                     f"running ({par['stages']} stages, `{goal['records']}`) against the sequential {minutes(total)}: "
                     f"{speedup:.2f}x{bound}", verdict(speedup >= goal["speedup"])])
    if (tflop := sum((data.get("reproduction_tflop") or {}).values())) and (mm := data.get("matmul")):
        rows.append([f"(floor) the reproduction's {tflop:.0f} TFLOP at the measured {mm['median_gflop_per_s']} GFLOP/s "
                     "matmul rate", minutes(tflop * 1000 / mm["median_gflop_per_s"]),
                     "no implementation of the same math goes below this on this machine"])
    for key, goal in GOALS["dvc"].items() if (dvc := data.get("dvc")) else ():
        what = f"{goal['what']} < {goal['seconds']} s"
        if key in dvc:
            rows.append([what, f"{dvc[key]['median_s']} s", verdict(dvc[key]["median_s"] < goal["seconds"])])
        else:  # a no-op `dvc repro` is timed only on an up-to-date pipeline
            rows.append([what, f"not timed: the pipeline was not up to date; `dvc status` took "
                               f"{dvc['status']['median_s']} s", "open"])
    if "wall_s" in (sr := data.get("search") or {}):
        goal = GOALS["search"]
        what = (f"the search, its top trials' re-runs on every seed and the winner's final models <= {goal['hours']} h "
                f"on {goal['workers']} workers")
        if "search_final" in sr:
            total = sr["wall_s"] + sr["reruns_wall_s"]
            rows.append([what, f"{minutes(total)}: the trials {minutes(sr['wall_s'])}, the re-runs and the final "
                         f"models {minutes(sr['reruns_wall_s'])}", verdict(total <= goal["hours"] * 3600)])
        else:
            rows.append([what, f"the trials: {minutes(sr['wall_s'])}; the re-runs and the final models: not all run "
                         "yet", "open"])
    goal = GOALS["gpu"]
    gpu = [g for g in data.get("gpu", []) if (g.get("table"), g.get("seeds")) == (goal["table"], goal["seeds"])]
    rows.append([f"GPU: {goal['what']}, <= {goal['seconds']} s on {goal['device']}",
                 *([f"{gpu[0]['seconds']} s", verdict(gpu[0]["seconds"] <= goal["seconds"])] if gpu else
                   [f"not measured: no {goal['table']} table at {goal['seeds']} seed among the GPU runs", "open"])])
    return section("Goals", table("goal|measured|verdict", rows))


def render(data: dict) -> str:
    mm, tp, st = data.get("matmul"), data.get("throughput"), data.get("stage_times") or {}
    lines = ["# Benchmarks", "", f"Written by `python -m benchmarks.measure` on {data['machine']}; raw numbers in "
             "`reports/benchmarks.json`. Throughput is the training part (before Keras's validation pass) of the "
             "fastest epoch after the first (which traces and compiles), best of the repeats; FLOPs count Dense and "
             "Conv2D multiply-adds, a training step as 3 x the forward pass.", ""]
    if mm:
        lines += [f"Machine yardstick: float32 2048^3 matrix multiply through Keras ({mm['backend']}): "
                  f"{mm['median_gflop_per_s']} GFLOP/s median, {mm['best_gflop_per_s']} best.", ""]
    if tp:
        rows = [[f"{f} ({e['variant']})", f"{e['plain']['images_per_s']:,.0f}", f"{e['ours']['images_per_s']:,.0f}",
                 f"{e['ratio']}x", f">= {GOALS['throughput'][f]}x, {verdict(e['ratio'] >= GOALS['throughput'][f])}",
                 e["plain"]["gflop_per_s"], e["ours"]["gflop_per_s"],
                 f"{100 * e['ours']['gflop_per_s'] / mm['median_gflop_per_s']:.0f}%" if mm else "n/a",
                 f"{e['ours']['epoch_images_per_s'] / e['plain']['epoch_images_per_s']:.2f}x", e["measured"][:10]]
                for f, e in tp.items()]
        lines += section("Training throughput: our stage code against the plain port", table(
            "family (variant)|plain images/s:|ours images/s:|ours / plain:|goal:|plain GFLOP/s:|ours GFLOP/s:|"
            "ours % of matmul rate:|whole epochs with validation, ours / plain:|measured", rows),
            "Epoch seconds (first epoch, then the rest): " + "; ".join(
                f"{f} plain {e['plain']['epoch_s']} ours {e['ours']['epoch_s']}" for f, e in tp.items()) + ".",
            "Our MNIST stage also evaluates the 10,000 test images after every epoch (the test curve the plots draw); "
            "the post's script does not: the whole-epoch column shows that cost." if any(
                f.startswith("mnist") and e["ours"]["validation_images"] for f, e in tp.items()) else "")
    lines += goals(data)
    if par := data.get("parallel"):
        lines += section("Threads and side-by-side units (our stage code)", table(
            "family|default threads (one per core):|one thread:|two one-thread units at once, combined:",
            [[f, f"{e['default_threads_images_per_s']:,.0f} images/s", f"{e['one_thread_images_per_s']:,.0f}",
              f"{e['two_side_by_side_images_per_s']:,.0f}"] for f, e in par.items()]),
            "`tools.run_parallel` runs each stage on TensorFlow's default threads: one thread per unit (the last "
            "column) would be faster, but TensorFlow splits its sums by thread count, which changes the last bits.")
    if units := data.get("units"):
        lines += section("Two whole units one after the other, and side by side (what `--workers 2` gains)", table(
            "family|units|one after the other:|side by side:|speed-up:|same result bytes",
            [[f, "; ".join(e["units"]), f"{e['one_after_the_other_s']} s", f"{e['side_by_side_s']} s",
              f"{e['speedup']}x", "yes" if e["identical_results"] else "NO"] for f, e in units.items()]))
    if tables := st.get("tables"):
        rows = [[t, e["stages"], minutes(e["seconds"]), f"{e['slowest'][0]} ({e['slowest'][1]:.0f} s)"]
                for t, e in sorted(tables.items())]
        total = {k: sum(e[k] for e in tables.values()) for k in ("stages", "seconds")}
        rows.append(["all", total["stages"], minutes(total["seconds"]), ""])
        old, runs = st.get("earlier") or {}, st.get("runs") or []
        lines += section("Wall time of the full reproduction, per table", "Sum of each stage's wall time (DVC's own "
                         f"hashing and each process's start included) from `{GOALS['reproduction']['records']}`, kept "
                         "by `python -m benchmarks.reproduce`.", table("table|stages:|wall time:|slowest stage", rows),
                         f"The {old['table']} table did not rerun here. `{old['file']}`: {old['what']}; "
                         f"{minutes(old['wall_seconds'])} for {old['units']} units, finished {old['finished']} "
                         f"({old['note']})." if old and old["table"] not in tables else "",
                         "`benchmarks.reproduce` runs: " + "; ".join(
                             f"{r['started']}: {minutes(r['wall_seconds'])}, {r['stages_run']} ran, "
                             f"{r['stages_skipped']} skipped, exit {r['exit_code']}" for r in runs) + "."
                         if runs else "",
                         runner_runs(data.get("parallel_run") or {}))
    if extra := data.get("extra_seeds"):
        seeds, workers = extra["seeds"], "/".join(map(str, extra["workers"]))
        times = f" --times {extra['file']}" if "file" in extra else ""
        lines += section(f"The extra seeds ({seeds[0]}-{seeds[-1]}) of the {WORDS[seeds[-1] + 1]}-seed run",
                         f"`python -m tools.run_parallel --workers {workers}{times}`: each "
                         "stage timed while it shared the cores with another (slower than alone: see the units side by "
                         f"side above). {extra['stages']} stages, {minutes(extra['stage_seconds'])} summed, "
                         f"{minutes(extra['busy_seconds'])} with at least one stage running (gaps between runs left "
                         "out).",
                         table("stage|stages:|median:|fastest:|slowest:|summed:", [
                             [kind, e["stages"], *(f"{e[k]:.0f} s" for k in ("median_s", "min_s", "max_s")),
                              minutes(e["seconds"])] for kind, e in extra["kinds"].items()]), runner_runs(extra))
    if dvc := data.get("dvc"):
        state = "all up to date" if dvc["pipeline_up_to_date"] else "not all up to date: no no-op `dvc repro` timed"
        lines += section("DVC commands on the full pipeline", f"{dvc['stages']} stages, {state}.", table(
            "command|median of 3:|runs", [[f"`{dvc[k]['command']}`", f"{dvc[k]['median_s']} s", dvc[k]["runs_s"]]
                                         for k in ("repro_noop", "status", "exp_show", "metrics_show") if k in dvc]))
    if rr := data.get("rerun"):
        lines += section("Rerun after one variant's param changes", f"`dvc exp run --temp -S {rr['set']}`: "
                         f"{rr['wall_s']} s; ran {len(rr['stages_run'])} stages ({', '.join(rr['stages_run'])}), "
                         f"{rr['stages_skipped']} skipped.")
    if qk := data.get("quick"):
        disk = (f" On disk it takes {qk['disk_linked_bytes'] / 1e6:.0f} MB with DVC's cache linked (`cache.type`), "
                f"{qk['disk_as_copies_bytes'] / 1e6:.0f} MB as copies." if "disk_linked_bytes" in qk else "")
        lines += section("The README's quick look", "`python -m tools.smoke DIR && cd DIR && dvc repro` (the smoke "
                         f"profile, datasets from {qk['mirror']}): {minutes(qk['wall_s'])} end to end "
                         f"({qk['project_s']} s to make the project), {qk['stages_run']} stages ran, report "
                         f"{'written' if qk['report_written'] else 'MISSING'}.{disk}")
    if dk := data.get("disk"):
        gb = {key: f"{value / 1e9:.1f} GB" for key, value in dk.items() if key.endswith("_bytes")}
        lines += section("Disk", f"Measured {dk['measured'][:10]} with `du`: the virtual environment "
                         f"{gb['venv_bytes']}, the prepared data (`data/`) {gb['data_bytes']}, the models "
                         f"(`models/`) {gb['models_bytes']}.")
    if ts := data.get("tests"):
        lines += section("The test suite", f"`python -m pytest` on a clean clone of `{ts['commit'][:12]}` "
                         f"({ts['workers']} pytest-xdist workers, as pytest.ini sets): {minutes(ts['wall_s'])} end to "
                         f"end; pytest said \"{ts['summary']}\"."
                         + (f" The temporary folder held {ts['tmp_peak_bytes'] / 1e9:.1f} GB at the most (`du` every "
                            "10 s)." if ts.get("tmp_peak_bytes") else ""))
    if sch := data.get("scheduler"):
        single, n = sch["single_item_up_to_date"]["median_s"], sch["stages"]
        cost = sch["task_round_trip_ms"] / 1000 + single
        lines += section("What the parallel runner adds per stage", "`tools.run_parallel` on a LocalCluster of 2 "
                         f"worker processes: the cluster starts in {sch['cluster_start_s']} s; an empty Dask task's "
                         f"round trip takes {sch['task_round_trip_ms']} ms (median of 30); `dvc --wait-for-lock repro "
                         f"--single-item` of an up-to-date unit takes {single} s (median of 3: DVC loads the {n}-stage "
                         f"pipeline and checks the stage). So each stage costs about {cost:.1f} s on top of its own "
                         f"work, {cost * n / 2 / 60:.1f} min for all {n} stages on 2 workers. A whole run with nothing "
                         "to do (cluster start, `dvc dag`, `dvc status`) took "
                         f"{sch['run_with_nothing_to_do']['median_s']} s.")
    if (sr := data.get("search")) and sr.get("trials"):
        wall = (f"{minutes(sr['wall_s'])} of wall time from the first trial's start to the last one's end, "
                if "wall_s" in sr else "")
        medians = "; ".join(f"the median {state} one {sr[f'{state}_median_s']:.0f} s"
                            for state in ("complete", "pruned") if f"{state}_median_s" in sr)
        lines += section("The hyperparameter search (`stages/search.py`)", f"{sr['trials']} trials (`{sr['file']}`) "
                         f"on {sr['workers']} Dask workers: {wall}{minutes(sr['trial_seconds'])} of trial "
                         f"time in all; {sr['pruned']} pruned ({sr['pruned'] / sr['trials']:.0%}). A trial took "
                         f"{sr['mean_s']:.0f} s on average; {medians}."
                         + (f" Then, two at a time (`{sr['reruns_file']}`), {sr['search_cv']['stages']} re-runs of "
                            f"its best trials on every seed, {sr['search_cv']['median_s']:.0f} s each (median), and "
                            f"{sr['search_final']['stages']} final models of its winner, "
                            f"{sr['search_final']['median_s']:.0f} s each: {minutes(sr['reruns_wall_s'])} of wall "
                            f"time over {sr['reruns_runs']} runs of `tools.run_parallel` (each run after the first "
                            "went on where the one before it stopped; a unit a stop cut short began again)."
                            if "search_final" in sr else ""))
    if mem := data.get("memory"):
        top = max(mem, key=mem.get)
        lines += section("Peak resident memory", table("process|peak RSS:", [[k, f"{mb:,.0f} MB"] for k, mb in
                                                                             mem.items()]),
                         f"Heaviest: {top}, {mem[top]:,.0f} MB (training families: one process of our stage code on "
                         "the full data).")
    lines += section("GPU runs (not comparable with the CPU rows)", [
        f"- {g['what']}: {g['seconds']} s on {g['devices']}, Keras 3 on {g.get('backend')} ({g['file']})"
        for g in data.get("gpu", [])] or ["- none recorded"])
    return "\n".join(lines)


def write(data: dict, out: Path = OUT_MD) -> None:
    with atomic_path(out) as tmp:
        tmp.write_text(render(data), encoding="utf-8")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--json", type=Path, default=Path("reports/benchmarks.json"))
    parser.add_argument("--out", type=Path, default=OUT_MD)
    args = parser.parse_args()
    write(json.loads(args.json.read_text()), args.out)


if __name__ == "__main__":
    main()
