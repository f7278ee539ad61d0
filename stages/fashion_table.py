"""Fashion-MNIST tables: mean curves over folds, the post's overfitting warning, mean +- std
over seeds, the final model and the CNN, next to the post's figures; plus the post's
`visualize()` figures (loss and accuracy, train vs validation, warning marked)."""

from __future__ import annotations

import argparse
import json
import logging
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from stages.claims import count_verdicts, figure_cells, in_post_order, load_claims, load_reference, seed_summary, tolerance_for, verdict_rule
from stages.common import ConfigError, atomic_path, build_config, config_dict, format_mean_std, load_params, mean_std, require, run_stage, seed_list, write_json
from stages.fashion_cv import CrossValidation
from stages.idx import DataError
from stages.layout import fashion_cnn_run, fashion_cv_run, fashion_final_run
from stages.run_guard import check_one_backend, check_trained_with, check_unchanged_since_start

log = logging.getLogger("stages.fashion_table")

CURVES = ("loss", "val_loss", "accuracy", "val_accuracy")


@dataclass(frozen=True)
class OverfittingRule:
    patience: int = 10
    min_decrease: float = 0.02  # the post's 0.98 factor

    def __post_init__(self):
        require(self.patience >= 1, "patience", self.patience, "allowed: an integer >= 1")
        require(0 <= self.min_decrease < 1, "min_decrease", self.min_decrease, "allowed: 0 <= min_decrease < 1")


def overfitting_warning(val_loss, rule: OverfittingRule) -> int | None:
    """The post's rule: the first epoch i (0-based) such that none of the next `patience`
    epochs has a val_loss below (1 - min_decrease) * val_loss[i]; None if no epoch qualifies
    (epochs without `patience` successors are never candidates, as in the post's loop)."""
    val_loss = np.asarray(val_loss, dtype=float)
    for i in range(len(val_loss) - rule.patience):
        if not np.any(val_loss[i + 1 : i + 1 + rule.patience] < (1 - rule.min_decrease) * val_loss[i]):
            return i
    return None


def mean_curves(histories: list[dict]) -> dict[str, np.ndarray]:
    """Per-epoch mean over folds (the post's np.mean(axis=0)). Folds stopped early are shorter:
    each epoch is then the mean over the folds that reached it."""
    length = max(len(h["loss"]) for h in histories)
    out = {}
    for name in CURVES:
        padded = np.full((len(histories), length), np.nan)
        for row, history in enumerate(histories):
            padded[row, : len(history[name])] = history[name]
        out[name] = np.nanmean(padded, axis=0)
    return out


def warning_summary(curves: dict, rule: OverfittingRule) -> dict:
    i = overfitting_warning(curves["val_loss"], rule)
    if i is None:
        return {"epoch": None, "val_loss": None, "val_accuracy": None}
    return {"epoch": i + 1, "val_loss": float(curves["val_loss"][i]), "val_accuracy": float(curves["val_accuracy"][i])}


def _load(path: Path) -> dict:
    if not path.is_file():
        raise DataError(f"{path}: missing; run `dvc repro` for the Fashion-MNIST stages first")
    return json.loads(path.read_text())


def summarize_cv(runs: Path, variants: list[str], seeds: list[int], cv: CrossValidation, rule: OverfittingRule):
    """Per variant: warning epoch / val_loss / val_accuracy (mean +- std over seeds), the
    early-stopping results where a variant uses it, and the seed-mean curves to plot."""
    summary, curves_out = {}, {}
    for variant in variants:
        warnings, seed_curves, stopped = [], [], []
        for seed in seeds:
            folds = [fashion_cv_run(runs, variant, seed, f) for f in range(cv.k)]
            histories = [_load(f / "history.json") for f in folds]
            curves = mean_curves(histories)
            seed_curves.append(curves)
            warnings.append(warning_summary(curves, rule))
            stopped += [_load(f / "metrics.json") for f in folds]
        entry = {key: seed_summary([w[key] for w in warnings]) for key in ("epoch", "val_loss", "val_accuracy")}
        entry["warned_seeds"] = sum(w["epoch"] is not None for w in warnings)
        if any("best_epoch" in m for m in stopped):
            entry["early_stopping"] = {
                "stopped_epoch": mean_std([m["epochs_run"] for m in stopped]),
                "best_epoch": mean_std([m["best_epoch"] for m in stopped]),
                "val_accuracy": mean_std([m["val_accuracy"] for m in stopped]),
            }
        summary[variant] = entry
        curves_out[variant] = {name: np.mean([c[name][: min(len(s["loss"]) for s in seed_curves)] for c in seed_curves], axis=0) for name in CURVES}
    return summary, curves_out


def write_curves(path: Path, curves: dict) -> None:
    """The seed-mean fold-mean curves in long form (epoch, variant, ...) for `dvc plots`."""
    import pandas as pd

    frames = []
    for variant, c in curves.items():
        frame = pd.DataFrame({name: c[name] for name in CURVES})
        frame.insert(0, "variant", variant)
        frame.insert(0, "epoch", np.arange(1, len(frame) + 1))
        frames.append(frame)
    with atomic_path(path) as tmp:
        pd.concat(frames, ignore_index=True).to_csv(tmp, index=False, float_format="%.6f")


def confusion_rows(confusion):
    """A confusion matrix (rows actual, columns predicted, summed over seeds) as one row per
    test prediction, the form DVC's confusion template counts."""
    import pandas as pd

    from stages.fashion_samples import CLASS_NAMES

    confusion = np.asarray(confusion, dtype=int)
    actual, predicted = np.nonzero(confusion)
    counts = confusion[actual, predicted]
    return pd.DataFrame({
        "actual": np.repeat([CLASS_NAMES[a] for a in actual], counts),
        "predicted": np.repeat([CLASS_NAMES[p] for p in predicted], counts),
    })


def warning_epochs(per_seed: dict[str, list], reference: dict):
    """Each seed's overfitting warning epoch per variant (and the CNN), with the post's beside
    them, in long form for `dvc plots` (the `strip` template) and the strip figure. A seed
    without a warning has no row."""
    import pandas as pd

    rows = []
    for variant, epochs in per_seed.items():
        rows += [{"variant": variant, "who": "our seed", "seed": seed, "epoch": e} for seed, e in epochs if e is not None]
        post = reference.get("cnn", {}).get("warning", {}) if variant == "cnn" else reference.get("cross_validation", {}).get(variant, {})
        if post.get("epoch") is not None:
            rows.append({"variant": variant, "who": "post", "seed": None, "epoch": post["epoch"]})
    return pd.DataFrame(rows, columns=["variant", "who", "seed", "epoch"]).astype({"seed": "Int64", "epoch": "Int64"})


def plot_warning_epochs(path: Path, frame) -> None:
    """One row per variant: each seed's warning epoch as a dot (stacked where seeds agree), the
    post's as a red cross."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    variants = list(dict.fromkeys(frame["variant"]))
    fig, ax = plt.subplots(figsize=(10, 0.55 * len(variants) + 1.5))
    for row, variant in enumerate(variants):
        ours = frame[(frame["variant"] == variant) & (frame["who"] == "our seed")]["epoch"].tolist()
        seen: dict = {}
        for epoch in ours:  # seeds with the same epoch stack upwards
            ax.scatter(epoch, row - 0.12 * seen.get(epoch, 0), c="tab:blue", s=25, zorder=2, label="our seeds" if row == 0 and not seen else None)
            seen[epoch] = seen.get(epoch, 0) + 1
        post = frame[(frame["variant"] == variant) & (frame["who"] == "post")]["epoch"].tolist()
        if post:
            ax.scatter(post, [row], c="tab:red", marker="x", s=80, zorder=3, label="post" if row == 0 else None)
    ax.set_yticks(range(len(variants)), variants)
    ax.invert_yaxis()  # the post's order, top down
    ax.set(xlabel="overfitting warning epoch", title="Overfitting warning epoch: each seed and the post's one run")
    ax.grid(True, axis="x")
    ax.legend(loc="lower right")
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=80)
    plt.close(fig)


def plot_curves(path: Path, title: str, curves: dict, warning_epoch: int | None, validation_label: str) -> None:
    """The post's visualize(): loss and accuracy side by side, train as dots, validation as a line."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    epochs = np.arange(1, len(curves["loss"]) + 1)
    fig, axes = plt.subplots(1, 2, figsize=(12, 4))
    for ax, metric, name in ((axes[0], "loss", "Loss"), (axes[1], "accuracy", "Accuracy")):
        ax.plot(epochs, curves[metric], "o", label=metric)
        ax.plot(epochs, curves[f"val_{metric}"], label=f"{validation_label} {metric}")
        if warning_epoch is not None:
            ax.scatter([warning_epoch], [curves[f"val_{metric}"][warning_epoch - 1]], c="r", zorder=3, label=f"overfitting warning (epoch {warning_epoch})")
        ax.set(title=f"Training and {validation_label} {metric}", xlabel="Epochs", ylabel=name)
        ax.legend()
        ax.grid(True)
    fig.suptitle(title)
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=80)
    plt.close(fig)


def settings_of(fashion: dict) -> dict:
    """What the tables' prose states, from the `fashion` params: folds, the warning rule, the
    chosen model and the CNN's epochs (so a smoke or experiment report says what it ran)."""
    final = fashion["final"]
    return {
        "k": fashion["cross_validation"]["k"],
        "epochs": fashion["training"]["epochs"],
        "patience": fashion["overfitting"]["patience"],
        "min_decrease": fashion["overfitting"]["min_decrease"],
        "final": f"dense({', '.join(map(str, final['model']['hidden_units']))})"
        + (f", dropout {final['model']['dropout_rate']:g}" if final["model"].get("dropout_rate") else "")
        + (f", L2 {final['model']['l2']:g}" if final["model"].get("l2") else "")
        + f", {final['epochs']} epochs",
        "cnn_epochs": fashion["cnn"]["epochs"],
    }


def render_sections(metrics: dict, reference: dict, tolerance: dict, settings: dict, level: int, figures: str) -> tuple[list[str], list[str]]:
    """The tables of both posts' Fashion-MNIST figures, in the post's order, with verdicts:
    the one renderer of these rows, for table.md and the report (and the verdicts, for the
    count). `figures` prefixes image paths."""
    h = "#" * level
    verdicts = []

    def _row(entry: dict | None, post, digits: int, tolerance: dict, metric: str) -> list[str]:
        cells = figure_cells(entry, post, tolerance_for(metric, tolerance), digits, accuracy="accuracy" in metric)
        verdicts.append(cells[-1])
        return cells

    cv = metrics["cross_validation"]
    seeds = metrics["final"]["test_accuracy"]["seeds"]  # one final model per seed, always measured
    lines = [
        f"{seeds} seed(s). Overfitting warning: the first epoch after which no epoch of the next",
        f"{settings['patience']} improves the fold-mean val_loss by more than {settings['min_decrease']:.0%} (the post's rule).",
        "",
        f"{h} Dense nets, {settings['k']}-fold cross-validation, {settings['epochs']} epochs",
        "",
        "| variant | post epoch | reproduced | 95% interval | rank | verdict | post val_loss | reproduced | 95% interval | rank | verdict "
        "| post val_accuracy | reproduced | 95% interval | rank | verdict |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    refs = reference.get("cross_validation", {})
    for variant in in_post_order(cv, refs):
        entry, ref = cv[variant], refs.get(variant, {})
        cells = [f"`{variant}`"]
        for metric, digits in (("epoch", 1), ("val_loss", 3), ("val_accuracy", 3)):
            cells += _row(entry[metric], ref.get(metric), digits, tolerance, metric)
        if 0 < entry["warned_seeds"] < seeds:
            cells[2] += f" (warning in {entry['warned_seeds']}/{seeds} seeds)"
        lines.append("| " + " | ".join(cells) + " |")
    stopping = {v: cv[v]["early_stopping"] for v in in_post_order(cv, refs) if "early_stopping" in cv[v]}
    if stopping:
        lines += ["", f"{h}# Beyond the post: early stopping (val_loss, best weights restored), per fold", "",
                  "| variant | stopped at epoch | best epoch | val_accuracy of the restored model |", "|---|---|---|---|"]
        for variant, e in stopping.items():
            lines.append(f"| `{variant}` | {format_mean_std(e['stopped_epoch'], 1)} | {format_mean_std(e['best_epoch'], 1)} | {format_mean_std(e['val_accuracy'], 3)} |")
    lines += ["", f"{h} The chosen model ({settings['final']}) on the test set", "",
              "| metric | post | reproduced | 95% interval | rank | verdict |", "|---|---|---|---|---|---|"]
    for metric in ("test_loss", "test_accuracy"):
        lines.append(f"| {metric} | " + " | ".join(_row(metrics["final"][metric], reference.get("final", {}).get(metric), 4, tolerance, metric)) + " |")
    cnn = metrics["cnn"]
    lines += ["", f"{h} CNN, {settings['cnn_epochs']} epochs, validated on the test set as the post does", "",
              "| at the warning epoch | post | reproduced | 95% interval | rank | verdict |", "|---|---|---|---|---|---|"]
    for metric, digits in (("epoch", 1), ("val_loss", 3), ("val_accuracy", 3)):
        lines.append(f"| {metric} | " + " | ".join(_row(cnn["warning"][metric], reference.get("cnn", {}).get("warning", {}).get(metric), digits, tolerance, metric)) + " |")
    lines.append(f"| final-epoch val_accuracy | - | {format_mean_std(cnn['final_val_accuracy'], 3)} | - | - | - |")
    lines += ["", count_verdicts(verdicts)]
    lines += ["", f"{h} Figures", ""]
    lines += [f"![{v}]({figures}{v}.png)" for v in in_post_order(cv, refs)] + [f"![cnn]({figures}cnn.png)"]
    lines += ["", "Each seed's overfitting warning epoch and the post's (its one run): the spread a single run can have.", "",
              f"![warning epochs]({figures}warning_epochs.png)"]
    return lines, verdicts


DEFINITIONS = {"logits": "val_loss_logits", "clipped": "val_loss_clipped", "keras": "val_loss"}


def other_backend(path: Path | None, rule: OverfittingRule, expected_params: dict[str, dict]) -> dict:
    """The post's warning figures from a `tools.run_variants --post fashion` file (the same
    cross-validation on another Keras backend, outside DVC), per variant and per definition of
    the validation loss: `logits` and `clipped` recomputed on the same weights after each epoch,
    `keras` as the backend's Keras reported it. {} without a file. Refuses a file whose params
    differ from the units' (`expected_params`, variant -> params as the file records them):
    those are left out and named under `other_params`."""
    if path is None:
        return {}
    data = _load(path)
    if data.get("post") != "fashion":
        raise DataError(f"{path}: not a Fashion-MNIST file of tools.run_variants (post: {data.get('post')!r})")
    differ = sorted(v for v, p in data["params"].items() if v not in expected_params or p != expected_params[v])
    variants: dict[str, dict] = {}
    for run in data["runs"]:
        if run["variant"] in differ:
            continue
        curves = {k: np.asarray(v) for k, v in run["curves"].items()}
        entry = variants.setdefault(run["variant"], {"seeds": [], **{d: [] for d in DEFINITIONS}})
        entry["seeds"].append(run["seed"])
        for definition, key in DEFINITIONS.items():
            entry[definition].append(warning_summary({"val_loss": curves[key], "val_accuracy": curves["val_accuracy"]}, rule))
        # Keras's own val_loss is one of the two definitions; which one, and how closely, is measured here.
        for definition in ("logits", "clipped"):
            gap = float(np.max(np.abs(curves["val_loss"] - curves[DEFINITIONS[definition]])))
            entry.setdefault("keras_gap", {})[definition] = max(gap, entry.get("keras_gap", {}).get(definition, 0.0))
        clip = float(np.max(curves["val_loss_logits"] - curves["val_loss_clipped"]))
        entry["clip_gap"] = max(clip, entry.get("clip_gap", 0.0))
    summary = {}
    for variant, entry in variants.items():
        summary[variant] = {
            "seeds": entry["seeds"],
            "keras_gap": entry["keras_gap"],
            "clip_gap": round(entry["clip_gap"], 6),
            **{d: {key: seed_summary([w[key] for w in entry[d]]) for key in ("epoch", "val_loss", "val_accuracy")} for d in DEFINITIONS},
            "epoch_moved": sum(a["epoch"] != b["epoch"] for a, b in zip(entry["logits"], entry["clipped"])),
        }
    label = f"Keras {data['versions']['keras']} on {data['backend']} {data['versions'].get(data['backend'], '')}".rstrip()
    # Files written before tools.run_variants recorded it: JAX reshuffles, seeded TensorFlow replays.
    order = data.get("epoch_order", "reshuffled" if data["backend"] == "jax" else "replayed")
    return {"label": f"{label}, {', '.join(data['devices']) or data['machine']}", "file": str(path), "epoch_order": order,
            "commit": data["code"]["commit"], "variants": summary, "other_params": differ}


def gap_pattern(cv: dict, other: dict, reference: dict) -> dict:
    """Which side of the seed mean the post's dense-net figures fall on, on TensorFlow (ours) and
    on the other backend (loss from the logits on both), over the variants both have: how many
    warn later / have a lower val_loss than the mean, and the mean of post - mean."""
    refs = reference.get("cross_validation", {})
    variants = [v for v in in_post_order(cv, refs) if v in other.get("variants", {}) and refs.get(v)]
    out = {"variants": len(variants)}
    for name, get in (("tensorflow", lambda v, m: cv[v][m]["mean"]), ("other", lambda v, m: other["variants"][v]["logits"][m]["mean"])):
        side = {}
        for metric, word, sign in (("epoch", "later", 1), ("val_loss", "lower", -1)):
            diffs = [refs[v][metric] - get(v, metric) for v in variants if get(v, metric) is not None]
            side[f"{metric}_{word}"] = sum(sign * d > 0 for d in diffs)
            side[f"{metric}_difference"] = round(float(np.mean(diffs)), 6) if diffs else None
        out[name] = side
    # The definition alone, over every (variant, seed) run of the other backend: how many warn
    # at another epoch when the loss is clipped, the mean shift, and the largest loss gap.
    pairs = [(a, b) for v in variants for a, b in zip(other["variants"][v]["logits"]["epoch"]["values"],
                                                      other["variants"][v]["clipped"]["epoch"]["values"]) if None not in (a, b)]
    out["definition"] = {
        "runs": len(pairs), "epoch_moved": sum(a != b for a, b in pairs),
        "epoch_shift": round(float(np.mean([b - a for a, b in pairs])), 6) if pairs else None,
        "largest_gap": max((other["variants"][v]["clip_gap"] for v in variants), default=None),
    }
    return out


def render_other_backend(other: dict, metrics: dict, reference: dict, tolerance: dict, level: int) -> list[str]:
    """Two tables of a second backend's cross-validation beside ours and the post's: the
    backend alone (both computing the loss from the logits, as Keras 3 on TensorFlow does), and
    the val_loss definition alone (logits vs clipped probabilities on the same weights)."""
    if not other:
        return []
    h = "#" * level
    cv, refs = metrics["cross_validation"], reference.get("cross_validation", {})
    variants = [v for v in in_post_order(cv, refs) if v in other["variants"]]
    order = {"reshuffled": "the training data reshuffled before every epoch (as the posts' Keras did)",
             "replayed": "one order of the training data replayed every epoch (as seeded TensorFlow does)"}[other["epoch_order"]]
    title = f"{h} Beyond the post: the same cross-validation on {other['label']}, {order}"
    if not variants:
        return ["", title, "",
                f"`{other['file']}` holds no variant trained with these params (it has {', '.join(other['other_params']) or 'none'}, "
                "with other params), so nothing of it is shown."]
    seeds = sorted({n for v in variants for n in [len(other["variants"][v]["seeds"])]})
    gaps = {d: max(other["variants"][v]["keras_gap"][d] for v in variants) for d in ("logits", "clipped")}
    own = min(gaps, key=gaps.get)

    def fmt(entry: dict, digits: int) -> str:
        return f"{format_mean_std(entry, digits)} ({entry['seeds']})" if entry.get("mean") is not None else "none"

    lines = [
        "", title, "",
        f"{'/'.join(map(str, seeds))} seeds per variant, trained outside DVC by `tools.run_variants --post fashion` "
        f"(`{other['file']}`, commit `{other['commit'][:12]}`) with the units' own code and params. After every epoch the",
        "validation loss of the same weights is also computed both ways a softmax output can get it: from the logits behind",
        "the softmax (Keras 3 on TensorFlow, and TensorFlow 2.1's `fit`), and from the probabilities clipped to",
        "[1e-7, 1 - 1e-7] (Keras 3 on JAX, and TensorFlow 2.1 in eager mode). The clip caps the loss of a confidently",
        "wrong answer at 16.1, so the clipped loss is never above the logits one.",
        *([f"Left out, trained with other params than these: {', '.join(other['other_params'])}."] if other["other_params"] else []),
        f"This backend's own val_loss is the {own} one (largest difference over every epoch, fold mean: {gaps[own]:.1e}; "
        f"from the {'clipped' if own == 'logits' else 'logits'} one: {gaps['clipped' if own == 'logits' else 'logits']:.1e}).",
        "", f"{h}# The backend alone (the loss from the logits on both)", "",
        "Per figure: the post's, ours on TensorFlow, and this backend's with its 95% interval, the post's rank and verdict.",
        "",
        "| variant | post epoch | TensorFlow | this backend | 95% interval | rank | verdict | post val_loss | TensorFlow | this backend "
        "| 95% interval | rank | verdict | post val_accuracy | TensorFlow | this backend | 95% interval | rank | verdict |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    verdicts = []
    for v in variants:
        o, ref = other["variants"][v]["logits"], refs.get(v, {})
        cells = [f"`{v}`"]
        for metric, digits in (("epoch", 1), ("val_loss", 3), ("val_accuracy", 3)):
            post, *rest = figure_cells(o[metric], ref.get(metric), tolerance_for(metric, tolerance), digits, accuracy="accuracy" in metric)
            verdicts.append(rest[-1])
            cells += [post, fmt(cv[v][metric], digits), *rest]
        lines.append("| " + " | ".join(cells) + " |")
    lines += ["", count_verdicts(verdicts, "this backend's")]
    pattern = gap_pattern(cv, other, reference)
    tf, ob = pattern["tensorflow"], pattern["other"]
    lines += ["", f"Over these {pattern['variants']} variants the post's warning epoch is later than the seed mean in {tf['epoch_later']} on "
              f"TensorFlow and {ob['epoch_later']} on this backend (post - mean: {tf['epoch_difference']:+.1f} and {ob['epoch_difference']:+.1f} "
              f"epochs on average), and its val_loss lower in {tf['val_loss_lower']} and {ob['val_loss_lower']} "
              f"(post - mean: {tf['val_loss_difference']:+.3f} and {ob['val_loss_difference']:+.3f})."]
    lines += ["", f"{h}# The val_loss definition alone (same weights, this backend)", "",
              "| variant | post epoch | epoch, logits | epoch, clipped | seeds whose epoch moved | val_loss at the warning, logits | clipped "
              "| largest logits - clipped, any epoch |",
              "|---|---|---|---|---|---|---|---|"]
    for v in variants:
        o, post = other["variants"][v], refs.get(v, {}).get("epoch")
        lines.append(f"| `{v}` | {'-' if post is None else post} | {fmt(o['logits']['epoch'], 1)} | {fmt(o['clipped']['epoch'], 1)} | "
                     f"{o['epoch_moved']}/{len(o['seeds'])} | {fmt(o['logits']['val_loss'], 3)} | {fmt(o['clipped']['val_loss'], 3)} | {o['clip_gap']:.4f} |")
    return lines


def expected_backend_params(fashion: dict, cv: CrossValidation) -> dict[str, dict]:
    """Per dense variant, its params as `tools.run_variants` records them: the variant's and the
    shared training settings' full configs (defaults filled in) and k."""
    from stages.fashion_cv import DenseVariant
    from stages.training import RunSettings

    settings = config_dict(build_config(RunSettings, fashion["training"], "fashion.training"))
    return {name: {**config_dict(build_config(DenseVariant, v, f"fashion.variants.{name}")), **settings, "k": cv.k}
            for name, v in fashion["variants"].items()}


def check_units(runs: Path, fashion: dict, seeds: list[int], cv: CrossValidation) -> None:
    """Every unit's config.json against the params it is filed under, and one Keras backend for
    all (stages.run_guard)."""
    training = fashion["training"]
    configs = {}
    for seed in seeds:
        for variant, settings in fashion["variants"].items():
            for fold in cv.folds:
                unit = f"fashion_cv@{variant}-{seed}-{fold}"
                configs[unit] = check_trained_with(fashion_cv_run(runs, variant, seed, fold), {**training, **settings, "k": cv.k}, unit)
        final = fashion["final"]
        configs[f"fashion_final@{seed}"] = check_trained_with(fashion_final_run(runs, seed), {**training, "epochs": final["epochs"], **final["model"]}, f"fashion_final@{seed}")
        configs[f"fashion_cnn@{seed}"] = check_trained_with(fashion_cnn_run(runs, seed), {**training, **fashion["cnn"]}, f"fashion_cnn@{seed}")
    check_one_backend(configs)


def main(argv: list[str] | None) -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--runs", required=True, type=Path)
    parser.add_argument("--reference", required=True, type=Path, help="the post's figures (reference/fashion.yaml)")
    parser.add_argument("--claims", required=True, type=Path, help="claims.yaml, for the tolerances of the verdicts")
    parser.add_argument("--metrics", required=True, type=Path)
    parser.add_argument("--table", required=True, type=Path)
    parser.add_argument("--figures", required=True, type=Path)
    parser.add_argument("--curves", required=True, type=Path, help="CSV of per-epoch mean curves for dvc plots")
    parser.add_argument("--predictions", required=True, type=Path, help="folder for the confusion-matrix data")
    parser.add_argument("--warnings", required=True, type=Path, help="CSV of each seed's warning epoch and the post's, for dvc plots")
    parser.add_argument("--other-backend", type=Path, nargs="*", default=[], help="tools.run_variants --post fashion files to show beside ours")
    parser.add_argument("--params", default=Path("params.yaml"), type=Path)
    parser.add_argument("--lock", type=Path, help="dvc.lock: refuse when params.yaml changed since this run's check_params")
    args = parser.parse_args(argv)
    fashion = load_params(args.params, "fashion")
    if not fashion.get("variants"):
        raise ConfigError(f"fashion.variants: {fashion.get('variants')!r} is not allowed; allowed: at least one variant (a table needs a row)")
    if args.lock:
        check_unchanged_since_start(args.params, args.lock)
    seeds = seed_list(fashion["seeds"], "fashion.seeds")
    cv = build_config(CrossValidation, fashion["cross_validation"], "fashion.cross_validation")
    if sorted(cv.folds) != list(range(cv.k)):
        raise ConfigError(f"fashion.cross_validation.folds: {list(cv.folds)} is not allowed; the table needs all {cv.k} folds")
    rule = build_config(OverfittingRule, fashion["overfitting"], "fashion.overfitting")

    reference = load_reference(args.reference)
    tolerance = load_claims(args.claims)["tolerance"]
    summary, curves = summarize_cv(args.runs, list(fashion["variants"]), seeds, cv, rule)
    finals = [_load(fashion_final_run(args.runs, s) / "metrics.json") for s in seeds]
    final = {key: seed_summary([m[key] for m in finals]) for key in ("test_loss", "test_accuracy")}
    cnn_runs = [_load(fashion_cnn_run(args.runs, s) / "metrics.json") for s in seeds]
    cnn_curves = [mean_curves([_load(fashion_cnn_run(args.runs, s) / "history.json")]) for s in seeds]
    check_units(args.runs, fashion, seeds, cv)
    cnn_warnings = [warning_summary(c, rule) for c in cnn_curves]
    cnn = {
        "warning": {key: seed_summary([w[key] for w in cnn_warnings]) for key in ("epoch", "val_loss", "val_accuracy")},
        "final_val_accuracy": mean_std([c["val_accuracy"][-1] for c in cnn_curves]),
    }
    metrics = {"cross_validation": summary, "final": final, "cnn": cnn}
    sections, _ = render_sections(metrics, reference, tolerance, settings_of(fashion), 2, "figures/")
    for path in args.other_backend:
        sections += render_other_backend(other_backend(path, rule, expected_backend_params(fashion, cv)), metrics, reference, tolerance, 2)
    table = "\n".join([
        "# Fashion-MNIST: reproduced tables", "",
        f"Mean ± sample std over the seeds {', '.join(map(str, seeds))}. The warning is taken on the per-epoch mean over",
        "folds, as the post's `visualize()` does.",
        *verdict_rule(tolerance),
        *sections,
    ]) + "\n"
    per_seed = {v: list(zip(seeds, e["epoch"]["values"])) for v, e in summary.items()}
    per_seed["cnn"] = list(zip(seeds, cnn["warning"]["epoch"]["values"]))
    warnings = warning_epochs(per_seed, reference)
    write_json(args.metrics, metrics)
    write_curves(args.curves, curves)
    with atomic_path(args.warnings) as tmp:
        warnings.to_csv(tmp, index=False)
    with atomic_path(args.predictions) as tmp:
        tmp.mkdir()
        for name, runs in (("final", finals), ("cnn", cnn_runs)):
            confusion_rows(np.sum([r["confusion"] for r in runs], axis=0)).to_csv(tmp / f"{name}.csv", index=False)

    with atomic_path(args.figures) as tmp:
        tmp.mkdir()
        for variant, c in curves.items():
            plot_curves(tmp / f"{variant}.png", f"dense: {variant} (mean over {cv.k} folds)", c, warning_summary(c, rule)["epoch"], "validation")
        cnn_mean = {name: np.mean([c[name] for c in cnn_curves], axis=0) for name in CURVES}
        plot_curves(tmp / "cnn.png", "CNN (validation = test set)", cnn_mean, warning_summary(cnn_mean, rule)["epoch"], "test")
        plot_warning_epochs(tmp / "warning_epochs.png", warnings)
    with atomic_path(args.table) as tmp:
        tmp.write_text(table, encoding="utf-8")
    log.info(f"fashion_table: {len(summary)} variants x {len(seeds)} seeds -> {args.table}")


if __name__ == "__main__":
    run_stage(main)
