"""The search's trials as the tables and plots show them (stages/search_table.py): every trial on the
parallel coordinates of the space, each parameter's importance, and the table of the best trials."""

from __future__ import annotations

import math
from pathlib import Path

from lib.common.core import DataError
from lib.common.paths import fold_folder, search_cv_seed
from lib.results.render import figure, format_mean_std, md_table
from lib.results.runs import read_curves, read_json
from lib.results.stats import prediction_interval, seed_summaries, seed_summary
from lib.train.configs import SPACE
from lib.train.overfitting import WARNING, mean_curves, warning_summary

AXES = ("layers", "units_1", "units_2", "activation", "optimizer", "learning_rate", "dropout_rate", "l2")


def read_study(path: Path):
    """The search's study as stages/search.py leaves it in its journal file, for the tables and the benchmarks."""
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    storage = optuna.storages.JournalStorage(optuna.storages.journal.JournalFileBackend(str(path)))
    return optuna.load_study(study_name="search", storage=storage)


def axis_position(value, entry: dict) -> float:
    """Where `value` lies on its axis, from 0 to 1: a choice by its place among the space's choices, a range
    value by where it lies in the range (on a log scale where the space samples on one)."""
    if "choices" in entry:
        choices = entry["choices"]
        return choices.index(value) / (len(choices) - 1) if len(choices) > 1 else 0.5
    low, high, value = (math.log(v) if entry["log"] else v for v in (entry["low"], entry["high"], value))
    return (value - low) / (high - low)


def coordinates(trials: list[dict], space: dict) -> list[dict]:
    """One row per trial and axis, for the parallel-coordinates plot: each searched parameter the trial has
    (a one-layer net has no `units_2`), then its value (the objective, from the lowest trial's to the
    highest's); `label` is the parameter as sampled."""
    values = [t["value"] for t in trials]
    low, high = min(values), max(values)
    rows = []
    for t in trials:
        common = {"trial": t["number"], "state": t["state"], "objective": round(t["value"], 6)}
        for axis in AXES:
            if axis in t["params"]:
                entry = space["units" if axis.startswith("units_") else axis]
                value = t["params"][axis]
                rows.append({**common, "axis": axis, "position": round(axis_position(value, entry), 6),
                             "label": f"{value:.3g}" if isinstance(value, float) else str(value)})
        rows.append({**common, "axis": "value", "position": round((t["value"] - low) / (high - low or 1), 6),
                     "label": f"{t['value']:.4f}"})
    return rows


def describe(params: dict) -> str:
    """A trial's net in words: `dense(256, 64) relu, adam lr 0.00123, dropout 0.21, L2 1e-05`."""
    units = ", ".join(str(params[f"units_{i + 1}"]) for i in range(params["layers"]))
    return (f"dense({units}) {params['activation']}, {params['optimizer']} lr {params['learning_rate']:.3g}, "
            f"dropout {params['dropout_rate']:.2f}, L2 {params['l2']:g}")


def space_lines(space: dict) -> list[str]:
    """The space in SPACE's order, params.yaml's (summary.json, written with sorted keys, does not keep it)."""
    space = {key: space[key] for key in SPACE if key in space}
    return [f"- `{key}`: " + (", ".join(f"{v:g}" if isinstance(v, float) else str(v) for v in entry["choices"])
                              if "choices" in entry else
                              f"{entry['low']:g} to {entry['high']:g}" + (" (log scale)" if entry["log"] else ""))
            for key, entry in space.items()]


def table_lines(summary: dict, trials: list[dict], importance: dict[str, float], shown: int, post: float | None,
                tolerance: dict | None) -> list[str]:
    """reports/search_table/table.md: the search as the report shows it (section_lines), then the `shown` best
    complete trials with their times, and each parameter's importance."""
    complete = sorted((t for t in trials if t["state"] == "complete"), key=lambda t: (-t["value"], t["number"]))
    seconds = sum(t["seconds"] for t in trials)
    rows = [[str(i + 1), str(t["number"]), describe(t["params"]), f"{t['value']:.4f}",
             str(t.get("warning_epoch") or f"none in {t['epochs_trained']}"), f"{t['seconds']:.0f}"]
            for i, t in enumerate(complete[:shown])]
    return ["# Beyond the post: automated search", "", *section_lines(summary, post, tolerance, 2),
            "## The trials", "",
            f"{seconds / 60:.0f} min of trial time in all, {seconds / len(trials):.0f} s a trial on average, each on "
            f"seed {summary['search_seed']} (`search.seed`).", "",
            f"### The {min(shown, len(complete))} best complete trials "
            f"(the first {len(summary['reruns'])} re-run above: `search.top`)", "",
            *md_table("rank | trial | net | fold-mean val_accuracy at the warning | warning epoch | seconds", rows),
            "", "### Each parameter's importance (PED-ANOVA, Optuna)", "",
            *md_table("parameter | importance", [[f"`{k}`", f"{v:.3f}"] for k, v in importance.items()])]


def seed_figure(curves: dict, rule) -> dict:
    """One seed's figures by the search's objective: the fold-mean curves' warning (epoch, val_loss,
    val_accuracy), or their last epoch where they never warn, as a trial is scored."""
    found = warning_summary(curves, rule)
    if found["epoch"] is not None:
        return {**found, "warned": True}
    return {"epoch": len(curves["val_loss"]), "val_loss": float(curves["val_loss"][-1]),
            "val_accuracy": float(curves["val_accuracy"][-1]), "warned": False}


def reruns(record: dict, places: list[str], seeds: list[int], k: int, rule, runs: Path) -> dict:
    """Each re-run best trial (stages/search_cv.py) over the seeds: its figures' seed summaries and the 95%
    prediction interval of its val_accuracy (the seeds' own, no tolerance floor: it ranks our runs, it
    judges no post). A run folder of another trial than the search's record names is stale: an error."""
    found = {}
    for rank, place in enumerate(places):
        number = record["top"][rank]
        trial = next(t for t in record["trials"] if t["number"] == number)
        figures = []
        for seed in seeds:
            folder = search_cv_seed(place, seed, runs)
            folds = [fold_folder(folder, fold) for fold in range(k)]
            for fold in folds:
                config = read_json(fold / "config.json")
                if (config["trial"], config["seed"], config["k"]) != (number, seed, k):
                    raise DataError(f"{fold}: trial {config['trial']}, seed {config['seed']}, k {config['k']}; the "
                                    f"search's {place} is trial {number}: run `dvc repro search_cv` first")
            figures.append(seed_figure(mean_curves([read_curves(fold) for fold in folds]), rule))
        summary = seed_summaries(figures, WARNING)
        found[place] = {"trial": number, "params": trial["params"], "search_value": trial["value"], **summary,
                        "warned_seeds": sum(f["warned"] for f in figures),
                        "interval": prediction_interval(summary["val_accuracy"]["values"], 0.0)}
    return found


def winner(found: dict) -> dict:
    """The re-run trial with the highest lower end of its interval (the earlier place on a tie), and what its
    final models train (stages/search_final.py): its params, for its seeds' mean warning epoch, rounded."""
    place = max(found, key=lambda p: (found[p]["interval"]["low"], -list(found).index(p)))
    entry = found[place]
    return {"place": place, "trial": entry["trial"], "params": entry["params"],
            "epochs": math.floor(entry["epoch"]["mean"] + 0.5)}


def final_figures(folders: list[Path], key: str, expected: dict | None = None) -> dict:
    """The seeds' `key` (metrics.json) of the final models in `folders`, with its seeds' 95% prediction interval;
    `expected`: what each one's config.json must hold (else it is stale: an error)."""
    values = []
    for folder in folders:
        config = read_json(Path(folder) / "config.json")
        if expected and any(config.get(k) != v for k, v in expected.items()):
            raise DataError(f"{folder}: trained {({k: config.get(k) for k in expected})}, not {expected}: run "
                            "`dvc repro search_final` first")
        values.append(read_json(Path(folder) / "metrics.json")[key])
    summary = seed_summary(values)
    return {**summary, "interval": prediction_interval(summary["values"], 0.0)}


def comparison(winner: dict, other: dict) -> dict:
    """The winner's test accuracy against another model's: the difference of the means, and whether it lies
    outside both seeds' intervals (each mean outside the other's interval)."""
    difference = round(winner["mean"] - other["mean"], 6)
    outside = not (other["interval"]["low"] <= winner["mean"] <= other["interval"]["high"]) and not (
        winner["interval"]["low"] <= other["mean"] <= winner["interval"]["high"])
    return {"difference": difference, "outside_both": outside}


def verdict(versus: dict) -> str:
    """A difference the seeds' spread explains beats nothing: only one outside both intervals is a verdict."""
    if not versus["outside_both"]:
        return "It neither beats nor falls short of"
    return "It beats" if versus["difference"] > 0 else "It falls short of"


def section_lines(summary: dict, post: float | None, tolerance: dict | None, level: int) -> list[str]:
    """What the report and reports/search_table/table.md say of the search: its trials, the best ones re-run on
    every seed with their intervals, the winner, and its test accuracy beside the post's chosen model and the
    CNN, judged as every table judges a figure against the post's (lib/results/render.figure)."""
    h = "#" * level
    places, best = summary["reruns"], summary["winner"]
    rows = [[place, str(e["trial"]), describe(e["params"]), f"{e['search_value']:.4f}",
             format_mean_std(e["val_accuracy"], seeds=True),
             f"{e['interval']['low']:.4f} to {e['interval']['high']:.4f}", format_mean_std(e["epoch"], 1),
             f"{e['warned_seeds']}/{e['epoch']['seeds']}"] for place, e in places.items()]
    test = summary["test"]
    header = "model | post | ours: mean ± std (seeds)" + (" | 95% interval | rank, p | statistical | practical"
                                                          if tolerance is not None else "")
    named = {"winner": f"the search's winner, {best['place']} (trial {best['trial']}), {best['epochs']} epochs",
             "post_choice": f"the post's choice, {summary['post_choice']}", "cnn": f"the CNN, {summary['cnn']}"}
    table = [[named[key], *figure(test[key], post if key != "cnn" else None, "test_accuracy", tolerance, 4)[0]]
             for key in ("winner", "post_choice", "cnn")]
    seeds = next(iter(places.values()))["val_accuracy"]["seeds"]
    return [
        f"{summary['trials']} trials of a seeded TPE search (Optuna) over the space below, {summary['pruned']} of "
        f"them pruned ({summary['pruned'] / summary['trials']:.0%}), each scored on one seed by the post's own "
        f"objective: the fold-mean val_accuracy at the overfitting warning of its {summary['k']}-fold "
        "cross-validation. The space (`search.space` in params.yaml):", "", *space_lines(summary["space"]), "",
        f"{h}# The best {len(places)} trials on {seeds} seeds", "",
        "Each re-run as the search ran it, on every seed of `fashion.seeds`; the interval is the seeds' 95% "
        "prediction interval for one new run. The winner is the trial with its highest lower end, not the one "
        "with the best single draw.", "",
        *md_table("place | trial | net | search (seed " + str(summary["search_seed"]) + ") | val_accuracy at the "
                  "warning | 95% prediction interval | epoch scored (the warning, else the last) | seeds that warned",
                  rows), "",
        f"The winner: **{best['place']}**, trial {best['trial']}, {describe(best['params'])}; its final models "
        f"train {best['epochs']} epochs (the mean of its seeds' epochs scored, rounded: the warning's, else the "
        "last) on all the training images.", "",
        f"{h}# The winner on the test set", "",
        f"Test accuracy over {test['winner']['seeds']} seeds, each model trained on all the training images; `post` "
        "is the figure the post printed for its chosen model, the one to beat.", "",
        *md_table(header, table), "",
        *judged_lines(test, tolerance)]


def judged_lines(test: dict, tolerance: dict | None) -> list[str]:
    """The winner's verdict against the post's choice and the CNN; none for a profile not judged (smoke)."""
    if tolerance is None:
        return ["Not judged: this profile is not the posts' setup, so the winner's figures stand beside the others "
                "without a verdict.", ""]
    versus, cnn = comparison(test["winner"], test["post_choice"]), comparison(test["winner"], test["cnn"])
    return [f"**{verdict(versus)} the post's choice** (ours, the same seeds): its mean test accuracy is "
            f"{abs(versus['difference']):.4f} {'above' if versus['difference'] > 0 else 'below'} it, "
            + ("outside both seeds' intervals (each mean outside the other's), a difference the seeds' spread does "
               "not explain." if versus["outside_both"] else
               "not outside both seeds' intervals, so the seeds' spread may explain it.")
            + f" The CNN's is {abs(cnn['difference']):.4f} {'below' if cnn['difference'] > 0 else 'above'} the "
            f"winner's, {'outside' if cnn['outside_both'] else 'not outside'} both intervals.", ""]
