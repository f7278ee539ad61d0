"""Every table's and the report's rendering: figure cells, rows, sections and counts, in one place,
so that the tables and the report show a figure the same way. Pure functions of the metrics, the
posts' figures and the tolerances."""

from __future__ import annotations

import re
from collections.abc import Mapping

from lib.common.paths import NOISY
from lib.results.claims import in_post_order, lookup
from lib.results.other_backend import gap_pattern
from lib.results.stats import interval_verdict, post_rank, seed_interval, tolerance_for

METRICS = ("train_accuracy", "test_accuracy")  # an MNIST tips row's figures


def format_mean_std(entry: Mapping | None, digits: int = 4) -> str:
    """A `mean_std` entry as a table cell: `0.9543 ± 0.0056`, or `none` where there is no value."""
    if not entry or entry.get("mean") is None:
        return "none"
    return f"{entry['mean']:.{digits}f} ± {entry['std']:.{digits}f}"


def figure_cells(entry: dict | None, post, tol: dict, digits: int, accuracy: bool) -> list[str]:
    """One figure's cells, as every table and the report show it: post | mean +- std (n) |
    95% prediction interval | the post's rank among itself and the seeds | verdict."""
    entry = entry or {}
    shown = "-" if post is None else f"{post:.{digits}f}" if isinstance(post, float) else str(post)
    if entry.get("mean") is None:
        return [shown, "none", "-", "-", interval_verdict({}, post)]
    reproduced = f"{format_mean_std(entry, digits)} ({entry['seeds']})"
    interval = seed_interval(entry, tol)
    rank = post_rank(entry.get("values") or [entry["mean"]], post)
    # Shown within what the figure can be (an accuracy in 0-1, a loss or an epoch above 0); the
    # verdict uses the interval itself, and a post's figure always lies within those limits.
    low, high = max(interval["low"], 0.0), min(interval["high"], 1.0) if accuracy else interval["high"]
    return [shown, reproduced, f"{low:.{digits}f} to {high:.{digits}f}" + (" (tol.)" if interval["widened"] else ""),
            "-" if rank is None else f"{rank:g}/{interval['n'] + 1}", interval_verdict(interval, post)]


def verdict_rule(tolerance: dict) -> list[str]:
    """What the verdict and rank columns mean, for the tables and the report."""
    minimum = ", ".join(f"{t['absolute']:g} for {kind}" for kind, t in tolerance.items())
    return [
        "A figure is *consistent* when the post's value lies inside the 95% prediction interval for one new run,",
        "mean ± t(0.975, n-1) · s · √(1 + 1/n) over our n seeds (s: the sample std), else *outside*; the interval is",
        f"never narrower than ± the tolerance in `claims.yaml` ({minimum}; marked \"tol.\" where",
        "that minimum decides). Rank: the post's place among itself and our seeds' values, from the lowest",
        "(n + 1 of n + 1: above every seed).",
    ]


def count_verdicts(verdicts: list[str], whose: str = "our") -> str:
    """'k of the N figures ... consistent, m outside': the count a post's section states."""
    judged = [v for v in verdicts if v != "-"]
    inside = sum(v == "consistent" for v in judged)
    return (f"{inside} of the post's {len(judged)} figures lie inside {whose} 95% prediction interval (consistent), "
            f"{len(judged) - inside} outside.")


BACKENDS = {"tensorflow": "TensorFlow", "jax": "JAX"}


def backend_label(backend: str) -> str:
    """How the tables name the Keras backend the units recorded."""
    return BACKENDS.get(backend, backend)


def settings_sentence(params: dict) -> str:
    """What every row shares, from params: '20 epochs on the first 10,000 training images'."""
    tips = params["mnist_tips"]
    epochs = sorted({v["epochs"] for v in tips["variants"].values()})
    # The noisy rows train on their source's images; the other groups are preprocess variants.
    sources = {tips["noise"]["source"] if group == NOISY else group for group in tips["data"]}
    limits = sorted({params["preprocess"][source].get("train_limit") for source in sources}, key=str)
    epoch_words = f"{epochs[0]} epochs" if len(epochs) == 1 else f"{epochs[0]}-{epochs[-1]} epochs (per row: params.yaml)"
    image_words = "all training images" if limits == [None] else f"the first {', '.join(f'{n:,}' for n in limits if n)} training images"
    return f"after {epoch_words} on {image_words}"


def render_rows(summary: dict, reference: dict, tolerance: dict) -> tuple[list[str], list[str]]:
    """The table's rows in the post's order, each figure as post | reproduced (mean ± std, n) |
    95% prediction interval | post's rank | verdict; and the verdicts, for the count."""
    lines = [
        "| row | variant | post train | reproduced train | 95% interval | rank | verdict "
        "| post test | reproduced test | 95% interval | rank | verdict |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    verdicts = []
    for variant in in_post_order(summary, reference):
        stats, ref = summary[variant], reference.get(variant, {})
        cells = [str(ref.get("row", "-")), f"`{variant}`"]
        for m in METRICS:
            figure = figure_cells(stats[m], ref.get(m), tolerance_for(m, tolerance), 4, accuracy=True)
            cells += figure
            verdicts.append(figure[-1])
        lines.append("| " + " | ".join(cells) + " |")
    return lines, verdicts


def provenance(data: dict, configs: dict[str, dict]) -> str:
    """What the other backend's file says of its params and code, compared with our units'."""
    if "params" not in data or "code" not in data:
        return ("The file records the backend, the Keras version and the devices, but not the params or the code that "
                "made it (it predates `tools/run_variants.py` recording them), so this table cannot say they were ours. "
                "Its noisy rows (7-8) were made when the pipeline tested every seed on one noise draw; ours test each seed on its own.")
    differ = sorted(v for v, p in data["params"].items() if v in configs and p != configs[v])
    same = "identical to" if not differ else f"different from ({', '.join(differ)})"
    return (f"Made at commit `{data['code']['commit'][:12]}`; its params are {same} those in our units' config.json, "
            f"and it records the MD5 of each module it ran ({len(data['code']['md5'])} files).")


def render_table(summary: dict, reference: dict, tolerance: dict, seeds: list[int], settings: str,
                 other: tuple[dict, dict] = ({}, {}), configs: dict | None = None, backend: str = "tensorflow") -> str:
    rows, verdicts = render_rows(summary, reference, tolerance)
    lines = [
        "# MNIST tips: reproduced table",
        "",
        f"Accuracy from `evaluate` {settings}, mean ± sample std over {len(seeds)} seed(s) "
        f"({', '.join(map(str, seeds))}).",
        *verdict_rule(tolerance),
        "",
        *rows,
        "",
        count_verdicts(verdicts),
    ]
    runs, data = other
    if runs:
        label = f"{data['backend']} on {', '.join(data['devices']) or data['machine']}"
        lines += [
            "",
            f"## The same rows with Keras on {label}",
            "",
            "Run outside DVC by `tools/run_variants.py`. " + provenance(data, configs or {}),
            "Keras 3's JAX backend computes cross-entropy from clipped probabilities, as Keras 2 did; on",
            "TensorFlow it uses the logits behind the softmax.",
            "",
            f"| row | variant | post test | this pipeline ({backend_label(backend)}) | {label} |",
            "|---|---|---|---|---|",
        ]
        for variant in in_post_order(summary, reference):
            ref = reference.get(variant, {})
            there = format_mean_std(runs[variant]["test_accuracy"]) if variant in runs else "-"
            post_test = f"{ref['test_accuracy']:.4f}" if "test_accuracy" in ref else "-"
            lines.append(f"| {ref.get('row', '-')} | `{variant}` | {post_test} | {format_mean_std(summary[variant]['test_accuracy'])} | {there} |")
    return "\n".join(lines) + "\n"


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


def render_other_backend(other: dict, metrics: dict, reference: dict, tolerance: dict, level: int,
                         backend: str = "tensorflow") -> list[str]:
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
    ours = backend_label(backend)

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
        f"Per figure: the post's, ours on {ours}, and this backend's with its 95% interval, the post's rank and verdict.",
        "",
        f"| variant | post epoch | {ours} | this backend | 95% interval | rank | verdict | post val_loss | {ours} | this backend "
        f"| 95% interval | rank | verdict | post val_accuracy | {ours} | this backend | 95% interval | rank | verdict |",
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
    tf, ob = pattern["ours"], pattern["other"]
    lines += ["", f"Over these {pattern['variants']} variants the post's warning epoch is later than the seed mean in {tf['epoch_later']} on "
              f"{ours} and {ob['epoch_later']} on this backend (post - mean: {tf['epoch_difference']:+.1f} and {ob['epoch_difference']:+.1f} "
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


def seed_counts(tables: dict) -> str:
    """How many seeds each table's figures are over: '10 seeds' or 'MNIST tips 10, Fashion-MNIST 5 seeds'."""
    counts = {"MNIST tips": {e["test_accuracy"]["seeds"] for e in tables["mnist_tips"].values()},
              "Fashion-MNIST": {tables["fashion"]["final"]["test_accuracy"]["seeds"]}}
    if len({n for ns in counts.values() for n in ns}) == 1:
        return f"{next(iter(counts['MNIST tips']))} seeds"
    return ", ".join(f"{name} {'/'.join(map(str, sorted(ns)))}" for name, ns in counts.items()) + " seeds"


def mnist_section(table: dict, reference: dict, tolerance: dict, settings: str) -> list[str]:
    seeds = {e["test_accuracy"]["seeds"] for e in table.values()}
    rows, verdicts = render_rows(table, reference, tolerance)
    return [
        "## MNIST tips (keras-tips-mnist)",
        "",
        f"Accuracy from `evaluate` {settings}, {'/'.join(map(str, sorted(seeds)))} seeds per row.",
        "Details, and the same rows on Keras's JAX backend: [mnist_tips/table.md](mnist_tips/table.md).",
        "",
        *rows,
        "",
        count_verdicts(verdicts),
    ]


def fashion_section(table: dict, reference: dict, tolerance: dict, settings: dict) -> list[str]:
    sections, _ = render_sections(table, reference, tolerance, settings, 3, "fashion/figures/")
    return [
        "## Fashion-MNIST dense nets and CNN (fashion-mnist-dnn-cnn)",
        "",
        "Details: [fashion/table.md](fashion/table.md).",
        "",
        *sections,
        "",
        "![one training image per class](fashion/classes.png)",
    ]


def claim_mark(outcome) -> str:
    """A claim's outcome as the claims tables show it."""
    if outcome.holds is None:
        return "not measured"
    return "fail" if not outcome.holds else "pass" if outcome.within_intervals else "means only"


def claims_section(outcomes, seeds: str) -> list[str]:
    """The posts' claims and our own checks, in two tables, each with an honest count. A claim
    holds when it holds on the seed means and at the ends of the figures' 95% prediction
    intervals least favourable to it; one that holds on the means only is counted apart."""
    lines = [f"A claim is checked on the means over our seeds ({seeds}), then at the ends of its figures' 95% prediction",
             "intervals that work against it (the lower end of a figure that must be high, and so on): it *holds* when it",
             "holds both ways, so that no single run inside the intervals would contradict it; *means only* when it holds",
             "on the means but a run inside the intervals could contradict it.", ""]
    for source, title, noun in (("post", "The posts' claims, checked on our numbers", "claims of the posts"),
                                ("project", "Checks of our own", "checks of our own")):
        chosen = [o for o in outcomes if o.source == source]
        if not chosen:
            continue
        lines += [f"## {title}", "", "| | claim | on our numbers (seed means) |", "|---|---|---|"]
        for o in chosen:
            mark = "**fail**" if claim_mark(o) == "fail" else claim_mark(o)
            lines.append(f"| {mark} | {o.text} | {o.detail} |")
        measured = [o for o in chosen if o.holds is not None]
        held = sum(bool(o.holds and o.within_intervals) for o in measured)
        means_only = sum(bool(o.holds and not o.within_intervals) for o in measured)
        unmeasured = len(chosen) - len(measured)
        if measured:
            lines += ["", f"{held} of the {len(measured)} {noun} measured in this run hold"
                      + (f", {means_only} more on the means only" if means_only else "")
                      + (f" ({unmeasured} not measured)." if unmeasured else "."), ""]
        else:
            lines += ["", f"None of the {len(chosen)} {noun} was measured in this run.", ""]
    return lines


def post_figures(reference: dict, path: tuple = ()):
    """(path, post value) of every figure a post printed: the numeric leaves of its reference
    file, whose keys mirror the table's metrics.json (`row` only orders the MNIST rows)."""
    for key, value in reference.items():
        if isinstance(value, dict):
            yield from post_figures(value, path + (key,))
        elif key != "row" and isinstance(value, (int, float)):
            yield path + (key,), value


def fill(text: str, tables: dict) -> str:
    """A differences.yaml text with each `{table.path:format}` replaced by that figure (the seed
    mean), or by "(not in this run)" where this run's tables lack it (a smoke run keeps a few
    variants); a test checks every address against the committed full run."""
    def one(match: re.Match) -> str:
        try:
            value = lookup(tables, match[1])
        except (KeyError, TypeError):
            return f"(`{match[1]}`: not in this run)"
        return "none" if value is None else format(value, match[2] or "g")
    return re.sub(r"\{([A-Za-z0-9_.]+)(?::([^}]*))?\}", one, text)


def figure_verdicts(tables: dict, references: dict, tolerance: dict) -> list[tuple[str, list[str], dict]]:
    """Every figure of the posts that this run measured: its address (`table.path`), its cells as
    the tables show them, and a record for reports/verdicts.json (post, mean, std, n, the 95%
    prediction interval, the post's rank among itself and the seeds, verdict)."""
    found = []
    for table, reference in references.items():
        for path, post in post_figures(reference):
            node = tables[table]
            for key in path:
                node = node.get(key) if isinstance(node, dict) else None
            if not isinstance(node, dict):
                continue
            digits = 1 if path[-1] == "epoch" else 4 if table == "mnist_tips" or path[0] == "final" else 3
            tol = tolerance_for(path[-1], tolerance)
            cells = figure_cells(node, post, tol, digits, "accuracy" in path[-1])
            interval = seed_interval(node, tol) if node.get("mean") is not None else {}
            values = node.get("values") or ([node["mean"]] if node.get("mean") is not None else [])
            record = {"post": post, "mean": node.get("mean"), "std": node.get("std"), "n": interval.get("n"),
                      "low": interval.get("low"), "high": interval.get("high"), "widened": interval.get("widened"),
                      "rank": post_rank(values, post), "verdict": cells[-1]}
            found.append((".".join((table, *path)), cells, record))
    return found


def differences_section(tables: dict, references: dict, tolerance: dict, differences: list[dict]) -> list[str]:
    """Every figure of the posts that lies outside our 95% prediction interval, each with what
    `differences.yaml` says of it (the cause an experiment showed, or the candidates tested and
    what they gave), then the entries about patterns rather than single figures."""
    by_figure = {f: entry for entry in differences for f in entry.get("figures", [])}
    lines = ["## Where we differ from the posts, and why", "",
             "Every figure outside its interval, with the cause an experiment showed or the candidates tested. "
             "The numbers in the text are seed means from the committed results.", ""]
    outside = [(address, cells) for address, cells, _ in figure_verdicts(tables, references, tolerance) if cells[-1] == "outside"]
    if not outside:
        lines.append("No figure of the posts lies outside its interval.")
    # One item per entry of differences.yaml (its figures together), then the unexplained ones.
    groups: dict[int, list] = {}
    for address, cells in outside:
        groups.setdefault(id(by_figure.get(address)), []).append((address, cells))
    for key, figures in groups.items():
        entry = by_figure.get(figures[0][0])
        shown = "; ".join(f"`{a}`: post {c[0]}, ours {c[1]}, interval {c[2]}, the post's rank {c[3]}" for a, c in figures)
        found = f"*{entry['found'].capitalize()}:* {fill(entry['text'], tables)}" if entry else "*No cause investigated yet.*"
        lines += [f"- {shown}.", f"  {found}"]
    patterns = [e for e in differences if not e.get("figures")]
    for entry in patterns:
        lines += ["", f"**{entry['title']}** *{entry['found'].capitalize()}:* {fill(entry['text'], tables)}"]
    return lines


def verdicts_record(tables: dict, references: dict, tolerance: dict, outcomes: list) -> dict:
    """reports/verdicts.json: every post figure's verdict with its interval and rank, and every
    claim's outcome, one entry per line of `git diff`, so that what a change of seeds or code
    moved is read off the diff."""
    def rounded(value):
        return round(value, 6) if isinstance(value, float) else value

    figures = {address: {k: rounded(v) for k, v in record.items()} for address, _, record in figure_verdicts(tables, references, tolerance)}
    counts = {}
    for address, record in figures.items():
        table = counts.setdefault(address.split(".")[0], {"consistent": 0, "outside": 0})
        table["consistent" if record["verdict"] == "consistent" else "outside"] += 1
    return {"figures": figures, "counts": counts, "claims": {o.claim_id: claim_mark(o) for o in outcomes}}


def report_lines(tables: dict, references: dict, tolerance: dict, outcomes: list, differences: list[dict], others: dict,
                 params: dict, backend: str | None = None) -> list[str]:
    """reports/README.md, line by line."""
    trained = f", trained with Keras 3 on {backend_label(backend)}" if backend else ""
    return [
        "# Reproduction report",
        "",
        "Generated by `dvc repro report` from the committed runs. Each post's figure is one training run; ours are",
        f"several seeds of each{trained}.",
        *verdict_rule(tolerance),
        "",
        *mnist_section(tables["mnist_tips"], references["mnist_tips"], tolerance, settings_sentence(params)),
        "",
        *fashion_section(tables["fashion"], references["fashion"], tolerance, settings_of(params["fashion"])),
        "",
        *claims_section(outcomes, seed_counts(tables)),
        *differences_section({**tables, **others}, references, tolerance, differences),
    ]
