"""Every table's and the report's rendering, in one place, so that the tables and the report show a
figure the same way: pure functions of the metrics, the posts' figures and the tolerances."""

from __future__ import annotations

import re

from lib.common.paths import NOISY
from lib.results.claims import in_post_order, lookup
from lib.results.other_backend import BACKENDS, LOSS_FROM, backend_label, gap_pattern
from lib.results.runs import METRICS
from lib.results.stats import (
    degenerate,
    interval_verdict,
    post_rank,
    practical_verdict,
    prediction_interval,
    rank_p_value,
    tolerance_for,
)
from lib.train.overfitting import WARNING

POSTS = "posts"  # params' `profile` of the posts' own setup, the one whose figures are judged against theirs
WARNING_FIGURES = tuple(zip(WARNING, (1, 3, 3)))  # an overfitting warning's figures, with their digits


def md_table(header: str, rows) -> list[str]:
    """A markdown table: the header (cells joined by " | "), the separator, one line per row of cells."""
    return [f"| {header} |", "|" + "---|" * (header.count("|") + 1), *(f"| {' | '.join(row)} |" for row in rows)]


def format_mean_std(entry: dict | None, digits: int = 4, seeds: bool = False) -> str:
    """A `mean_std` entry as a cell: `0.9543 ± 0.0056` (with `seeds`, then ` (n)`), or `none` without a value."""
    if not entry or entry.get("mean") is None:
        return "none"
    return f"{entry['mean']:.{digits}f} ± {entry['std']:.{digits}f}" + (f" ({entry['seeds']})" if seeds else "")


JUDGED = " | 95% interval | rank, p | statistical | practical"  # the judged columns after a figure's


def figure(entry: dict | None, post, metric: str, tolerance: dict | None, digits: int) -> tuple[list[str], dict]:
    """A figure against the post's: its cells as every table shows them (post | mean ± std (n) | 95% interval
    | rank, p | statistical | practical, see `verdict_rule`) and its record for reports/verdicts.json; without
    `tolerance` (a profile that is not the posts' setup, see `judging`) only post | mean ± std (n)."""
    entry = entry or {}
    shown = "-" if post is None else f"{post:.{digits}f}" if isinstance(post, float) else str(post)
    if tolerance is None:
        return [shown, format_mean_std(entry, digits, seeds=True)], {"statistical": "-", "practical": "-"}
    values = entry.get("values") or [entry.get("mean")]  # a figure summarised without its seeds: one run
    interval = prediction_interval(values, 0.0) if entry.get("mean") is not None else {}
    rank = post_rank(values, post) if interval else None
    record = {"post": post, "mean": entry.get("mean"), "std": entry.get("std"), "n": interval.get("n"),
              "low": interval.get("low"), "high": interval.get("high"), "rank": rank,
              "p": None if rank is None else round(rank_p_value(rank, interval["n"]), 4),
              "degenerate": degenerate(values) if interval else "",
              "statistical": interval_verdict(interval, post),
              "practical": practical_verdict(entry.get("mean"), post, tolerance_for(metric, tolerance)["absolute"])}
    if not interval:
        return [shown, "none", "-", "-", record["statistical"], record["practical"]], record
    # Shown within what the figure can be (an accuracy in 0-1, a loss or an epoch above 0); the
    # verdict uses the interval itself, and a post's figure always lies within those limits.
    low, high = max(interval["low"], 0.0), min(interval["high"], 1.0) if "accuracy" in metric else interval["high"]
    ranked = "-" if rank is None else f"{rank:g}/{interval['n'] + 1}, p {record['p']:.2f}"
    statistical = record["statistical"] + (f" ({record['degenerate']})" if record["degenerate"] else "")
    return [shown, format_mean_std(entry, digits, seeds=True), f"{low:.{digits}f} to {high:.{digits}f}", ranked,
            statistical, record["practical"]], record


def figure_row(first: list[str], entries: dict, refs: dict, figures, tolerance: dict, verdicts: list,
               beside: dict | None = None) -> list[str]:
    """A row: `first`, then each (metric, digits) figure of `entries` against the post's `refs`, with
    `beside`'s figure after the post's where given; each figure's record is appended to `verdicts`."""
    cells = list(first)
    for metric, digits in figures:
        (post, *rest), record = figure(entries[metric], refs.get(metric), metric, tolerance, digits)
        cells += [post, *([format_mean_std(beside[metric], digits, seeds=True)] if beside else []), *rest]
        verdicts.append(record)
    return cells


def judging(profile: str, tolerance: dict) -> dict | None:
    """The tolerances to judge our figures against the posts' with, or None where params' `profile` is not
    the posts' setup (`tools.smoke` writes `smoke`): smaller nets, fewer epochs and less data are not
    expected to give the posts' figures, so their tables show both figures and judge neither."""
    return tolerance if profile == POSTS else None


def columns(header: str, tolerance: dict | None) -> str:
    """A table header, each `{J}` the judged columns, or nothing where nothing is judged."""
    return header.replace("{J}", JUDGED if tolerance is not None else "")


def verdict_rule(tolerance: dict | None) -> list[str]:
    """What the verdict and rank columns mean, for the tables and the report."""
    if tolerance is None:
        return ["These figures are not judged against the posts': this profile is not the posts' setup (see",
                "params.yaml), so the intervals, ranks, verdicts and claims are left out."]
    minimum = ", ".join(f"{t['absolute']:g} for {kind}" for kind, t in tolerance.items())
    return [
        "Each figure gets two verdicts, for two questions. *Statistical*, could one run of ours give the post's?",
        "*consistent* when it lies inside the 95% prediction interval for one new run, mean ± t(0.975, n-1) · s ·",
        "√(1 + 1/n) over our n seeds alone (s: the sample std), else *outside*. *Practical*, is the difference",
        "too small to matter? *within tol.* when the post's figure is within the tolerance in `claims.yaml` of our",
        f"mean ({minimum}), else *beyond tol.*",
        "Rank: the post's place among itself and our seeds' values, from the lowest (n + 1 of n + 1: above every",
        "seed); p: how often a rank that far out would come, were the post one more run of ours, assuming nothing",
        "of their distribution (2/(n + 1) at either end). Where most seeds are equal (or there is one), the",
        "statistical verdict says so: its interval then rests on almost no spread, and the rank is the better guide.",
    ]


def count_verdicts(records: list[dict], whose: str = "our", of: str = "the post's {n} figures") -> str:
    """Both counts a post's section states: of its figures (`of`, with their number as {n}), how many are
    statistically consistent, how many within the tolerance."""
    judged = [r for r in records if r["statistical"] != "-"]
    if not judged:
        return "Not judged: this profile is not the post's setup."
    inside = sum(r["statistical"] == "consistent" for r in judged)
    close = sum(r["practical"] == "within tol." for r in judged)
    return (f"Of {of.format(n=len(judged))}, {inside} lie inside {whose} 95% prediction interval "
            f"(statistical: consistent) and {close} within the tolerance of {whose} mean (practical).")


def settings_sentence(params: dict) -> str:
    """What every MNIST tips row shares, from params: 'after 20 epochs on the first 10,000 training images'."""
    tips = params["mnist_tips"]
    epochs = sorted({v["epochs"] for v in tips["variants"].values()})
    # The noisy rows train on their source's images; the other groups are preprocess variants.
    sources = {tips["noise"]["source"] if group == NOISY else group for group in tips["data"]}
    limits = sorted({params["preprocess"][source].get("train_limit") for source in sources}, key=str)
    epoch_words = (f"{epochs[0]} epochs" if len(epochs) == 1
                   else f"{epochs[0]}-{epochs[-1]} epochs (per row: params.yaml)")
    image_words = ("all training images" if limits == [None]
                   else f"the first {', '.join(f'{n:,}' for n in limits if n)} training images")
    return f"after {epoch_words} on {image_words}"


def project_variant(reference_entry: dict) -> bool:
    """A variant of ours, not a row of the post (its reference entry says `source: project`): judged against
    the post's row it varies, and counted apart."""
    return reference_entry.get("source") == "project"


def mnist_rows(summary: dict, reference: dict, tolerance: dict) -> list[str]:
    """The MNIST tips table in the post's order, then the counts of the verdicts on the post's rows, and apart
    on our own variants."""
    posts, ours, rows = [], [], []
    for v in in_post_order(summary, reference):
        rows.append(figure_row([str(reference.get(v, {}).get("row", "-")), f"`{v}`"], summary[v],
                               reference.get(v, {}), [(m, 4) for m in METRICS], tolerance,
                               ours if project_variant(reference.get(v, {})) else posts))
    header = columns("row | variant | post train | reproduced train{J} | post test | reproduced test{J}", tolerance)
    counts = [count_verdicts(posts)]
    if ours and tolerance is not None:
        counts.append(count_verdicts(ours, of="our own variants' {n} figures (against the post's row each varies)"))
    return [*md_table(header, rows), "", *counts]


def provenance(data: dict, configs: dict[str, dict]) -> str:
    """What the other backend's file says of its params and code, compared with our units'."""
    if "params" not in data or "code" not in data:
        return ("The file records the backend, the Keras version and the devices, but not the params or the code that "
                "made it (it predates `tools/run_variants.py` recording them), so this table cannot say they were "
                "ours. Its noisy rows (7-8) were made when the pipeline tested every seed on one noise draw; ours "
                "test each seed on its own.")
    differ = sorted(v for v, p in data["params"].items() if v in configs and p != configs[v])
    same = "identical to" if not differ else f"different from ({', '.join(differ)})"
    return (f"Made at commit `{data['code']['commit'][:12]}`; its params are {same} those in our units' config.json, "
            f"and it records the MD5 of each module it ran ({len(data['code']['md5'])} files).")


def render_table(summary: dict, reference: dict, tolerance: dict, seeds: list[int], settings: str,
                 others: list[tuple[dict, dict]] = (), configs: dict | None = None, backend: str = "tensorflow") -> str:
    """The MNIST tips table.md: the rows with their verdicts, then other backends' accuracies beside ours."""
    lines = ["# MNIST tips: reproduced table", "",
             f"Accuracy from `evaluate` {settings}, mean ± sample std over {len(seeds)} seed(s) "
             f"({', '.join(map(str, seeds))}), trained with Keras 3 on {BACKENDS.get(backend, backend)}.",
             *verdict_rule(tolerance), "", *mnist_rows(summary, reference, tolerance)]
    others = [(runs, data) for runs, data in others if runs]
    if others and tolerance is not None:  # other backends' full runs beside a smaller profile's would mislead
        letters = [chr(ord("A") + i) for i in range(len(others))]
        ours = f"Keras 3 on {BACKENDS.get(backend, backend)}"
        rows = [[str(reference.get(v, {}).get("row", "-")), f"`{v}`", *(cell for metric in ("train_accuracy",
                 "test_accuracy") for cell in (
                    f"{reference[v][metric]:.4f}" if metric in reference.get(v, {}) else "-",
                    format_mean_std(summary[v][metric]),
                    *(format_mean_std(runs[v][metric], seeds=True) if v in runs else "-" for runs, _ in others)))]
                for v in in_post_order(summary, reference)]
        legend = [f"- **{letter}**: {backend_label(data)} (`{data['file']}`), cross-entropy "
                  f"{LOSS_FROM.get(data['backend'], 'as its library computes it')}. {provenance(data, configs or {})}"
                  for letter, (_, data) in zip(letters, others)]
        backends = " | ".join(letters)
        lines += ["", "## The same rows on other backends", "",
                  "Run outside DVC by `tools/run_variants.py`, mean ± std (seeds). This pipeline: "
                  f"{ours}, cross-entropy {LOSS_FROM.get(backend, 'as its library computes it')}.", "", *legend, "",
                  *md_table(f"row | variant | post train | this pipeline | {backends} | post test | this pipeline "
                            f"| {backends}", rows)]
    return "\n".join(lines) + "\n"


def settings_of(fashion: dict) -> dict:
    """What the Fashion-MNIST tables' prose states, from params (so that a smoke run says what it ran)."""
    model, overfitting = fashion["final"]["model"], fashion["overfitting"]
    final = (f"dense({', '.join(map(str, model['hidden_units']))})"
             + (f", dropout {model['dropout_rate']:g}" if model.get("dropout_rate") else "")
             + (f", L2 {model['l2']:g}" if model.get("l2") else "") + f", {fashion['final']['epochs']} epochs")
    return {"k": fashion["cross_validation"]["k"], "epochs": fashion["training"]["epochs"],
            "patience": overfitting["patience"], "min_decrease": overfitting["min_decrease"], "final": final,
            "cnn_epochs": fashion["cnn"]["epochs"]}


def render_sections(metrics: dict, reference: dict, tolerance: dict, settings: dict, level: int,
                    figures: str) -> tuple[list[str], list[str]]:
    """Both posts' Fashion-MNIST tables, for table.md and the report, and their verdicts; `figures` prefixes images."""
    h, verdicts = "#" * level, []
    cv, refs = metrics["cross_validation"], reference.get("cross_validation", {})
    variants = in_post_order(cv, refs)
    seeds = metrics["final"]["test_accuracy"]["seeds"]  # one final model per seed, always measured
    rows = []
    for v in variants:
        rows.append(figure_row([f"`{v}`"], cv[v], refs.get(v, {}), WARNING_FIGURES, tolerance, verdicts))
        if 0 < cv[v]["warned_seeds"] < seeds:
            rows[-1][2] += f" (warning in {cv[v]['warned_seeds']}/{seeds} seeds)"
    lines = [f"{seeds} seed(s). Overfitting warning: the first epoch after which no epoch of the next",
             f"{settings['patience']} improves the fold-mean val_loss by more than {settings['min_decrease']:.0%} "
             "(the post's rule).", "",
             f"{h} Dense nets, {settings['k']}-fold cross-validation, {settings['epochs']} epochs", "",
             *md_table(columns("variant | post epoch | reproduced{J} | post val_loss | reproduced{J} "
                               "| post val_accuracy | reproduced{J}", tolerance), rows)]
    stopping = [[f"`{v}`", *(format_mean_std(cv[v]["early_stopping"][key], digits) for key, digits in
                             (("stopped_epoch", 1), ("best_epoch", 1), ("val_accuracy", 3)))]
                for v in variants if "early_stopping" in cv[v]]
    if stopping:
        lines += ["", f"{h}# Beyond the post: early stopping (val_loss, best weights restored), per fold", "",
                  *md_table("variant | stopped at epoch | best epoch | val_accuracy of the restored model", stopping)]
    final = [figure_row([m], metrics["final"], reference.get("final", {}), [(m, 4)], tolerance, verdicts)
             for m in ("test_loss", "test_accuracy")]
    cnn, cnn_refs = metrics["cnn"], reference.get("cnn", {}).get("warning", {})
    warning = [figure_row([m], cnn["warning"], cnn_refs, [(m, d)], tolerance, verdicts) for m, d in WARNING_FIGURES]
    warning.append(["final-epoch val_accuracy", "-", format_mean_std(cnn["final_val_accuracy"], 3),
                    *(["-"] * JUDGED.count("|") if tolerance is not None else [])])
    lines += ["", f"{h} The chosen model ({settings['final']}) on the test set", "",
              *md_table(columns("metric | post | reproduced{J}", tolerance), final),
              "", f"{h} CNN, {settings['cnn_epochs']} epochs, validated on the test set as the post does", "",
              *md_table(columns("at the warning epoch | post | reproduced{J}", tolerance),
                        warning),
              "", count_verdicts(verdicts), "", f"{h} Figures", "",
              *(f"![{v}]({figures}{v}.png)" for v in variants), f"![cnn]({figures}cnn.png)", "",
              "Each seed's overfitting warning epoch and the post's (its one run): the spread a single run can have.",
              "", f"![warning epochs]({figures}warning_epochs.png)"]
    return lines, verdicts


def render_other_backend(other: dict, metrics: dict, reference: dict, tolerance: dict, level: int,
                         backend: str = "tensorflow") -> list[str]:
    """Another backend's cross-validation beside ours and the post's, in two tables: the backend alone (the
    loss from the logits on both), and the val_loss definition alone (logits vs clipped, same weights)."""
    if not other or tolerance is None:
        return []
    h, ours, verdicts = "#" * level, BACKENDS.get(backend, backend), []
    cv, refs = metrics["cross_validation"], reference.get("cross_validation", {})
    variants = [v for v in in_post_order(cv, refs) if v in other["variants"]]
    order = {"reshuffled": "the training data reshuffled before every epoch (as the posts' Keras did)",
             "replayed": "one order of the training data replayed every epoch (as seeded TensorFlow does)"}
    title = f"{h} Beyond the post: the same cross-validation on {other['label']}, {order[other['epoch_order']]}"
    if not variants:
        return ["", title, "", f"`{other['file']}` holds no variant trained with these params (it has "
                f"{', '.join(other['other_params']) or 'none'}, with other params), so nothing of it is shown."]
    seeds = "/".join(map(str, sorted({len(other["variants"][v]["seeds"]) for v in variants})))
    gaps = {d: max(other["variants"][v]["keras_gap"][d] for v in variants) for d in ("logits", "clipped")}
    own, not_own = ("logits", "clipped") if gaps["logits"] <= gaps["clipped"] else ("clipped", "logits")
    rows = [figure_row([f"`{v}`"], other["variants"][v]["logits"], refs.get(v, {}), WARNING_FIGURES, tolerance,
                       verdicts, beside=cv[v]) for v in variants]
    pattern = gap_pattern(cv, other, reference)
    tf, ob = pattern["ours"], pattern["other"]
    over = "this variant" if pattern["variants"] == 1 else f"these {pattern['variants']} variants"
    lines = [
        "", title, "",
        f"{seeds} seeds per variant, trained outside DVC by `tools.run_variants --post fashion` (`{other['file']}`, "
        f"commit `{other['commit'][:12]}`) with the units' own code and params. After every epoch the",
        "validation loss of the same weights is also computed both ways a softmax output can get it: "
        "from the logits behind",
        "the softmax (Keras 3 on TensorFlow, and TensorFlow 2.1's `fit`), and from the probabilities clipped to",
        "[1e-7, 1 - 1e-7] (Keras 3 on JAX, and TensorFlow 2.1 in eager mode). The clip caps the loss of a confidently",
        "wrong answer at 16.1, so the clipped loss is never above the logits one.",
        *([f"Left out, trained with other params than these: {', '.join(other['other_params'])}."]
          if other["other_params"] else []),
        f"This backend's own val_loss is the {own} one (largest difference over every epoch, fold mean: "
        f"{gaps[own]:.1e}; from the {not_own} one: {gaps[not_own]:.1e}).",
        "", f"{h}# The backend alone (the loss from the logits on both)", "",
        f"Per figure: the post's, ours on {ours}, and this backend's with its 95% interval, the post's rank and "
        "both verdicts.", "",
        *md_table(columns(f"variant | post epoch | {ours} | this backend{{J}} | post val_loss | {ours} "
                          f"| this backend{{J}} | post val_accuracy | {ours} | this backend{{J}}", tolerance), rows),
        "", count_verdicts(verdicts, "this backend's"), "",
        f"Over {over} the post's warning epoch is later than the seed mean in "
        f"{tf['epoch_later']} on {ours} and {ob['epoch_later']} on this backend (post - mean: "
        f"{tf['epoch_difference']:+.1f} and {ob['epoch_difference']:+.1f} epochs on average), and its val_loss lower "
        f"in {tf['val_loss_lower']} and {ob['val_loss_lower']} (post - mean: {tf['val_loss_difference']:+.3f} and "
        f"{ob['val_loss_difference']:+.3f}).",
        "", f"{h}# The val_loss definition alone (same weights, this backend)", "",
    ]
    rows = []
    for v in variants:
        o, post = other["variants"][v], refs.get(v, {}).get("epoch")
        logits, clipped = ([format_mean_std(o[d][m], digits, True) for m, digits in WARNING_FIGURES[:2]]
                           for d in ("logits", "clipped"))
        rows.append([f"`{v}`", "-" if post is None else str(post), logits[0], clipped[0],
                     f"{o['epoch_moved']}/{len(o['seeds'])}", logits[1], clipped[1], f"{o['clip_gap']:.4f}"])
    return lines + md_table("variant | post epoch | epoch, logits | epoch, clipped | seeds whose epoch moved | "
                            "val_loss at the warning, logits | clipped | largest logits - clipped, any epoch", rows)


def claim_mark(outcome) -> str:
    """A claim's outcome as the claims tables show it."""
    if outcome.holds is None:
        return "not measured"
    return "fail" if not outcome.holds else "pass" if outcome.within_intervals else "means only"


def claims_section(outcomes, seeds: str) -> list[str]:
    """The posts' claims and our own checks, in two tables, each with its count of those that hold."""
    lines = [
        f"A claim is checked on the means over our seeds ({seeds}), then at the ends of its figures' 95% prediction",
        "intervals (each at least ± the tolerance) that work against it (the lower end of a figure that must be high,",
        "and so on): it *holds* when it holds both ways, so that no single run inside the intervals would contradict",
        "it; *means only* when it holds on the means but a run inside the intervals could contradict it.", ""]
    for source, title, noun in (("post", "The posts' claims, checked on our numbers", "claims of the posts"),
                                ("project", "Checks of our own", "checks of our own")):
        chosen = [o for o in outcomes if o.source == source]
        if not chosen:
            continue
        marks = [claim_mark(o) for o in chosen]
        unmeasured, means_only = marks.count("not measured"), marks.count("means only")
        lines += [f"## {title}", "", *md_table("| claim | on our numbers (seed means)", [
            ["**fail**" if mark == "fail" else mark, o.text, o.detail] for mark, o in zip(marks, chosen)]), ""]
        if unmeasured < len(chosen):
            lines.append(f"{marks.count('pass')} of the {len(chosen) - unmeasured} {noun} measured in this run hold"
                         + (f", {means_only} more on the means only" if means_only else "")
                         + (f" ({unmeasured} not measured)." if unmeasured else "."))
        else:
            lines.append(f"None of the {len(chosen)} {noun} was measured in this run.")
        lines.append("")
    return lines


VERDICT_WORDS = {"consistent": "consistent with ours", "outside": "outside ours"}  # for `{verdict of ...}`
PRACTICAL_WORDS = {"within tol.": "within the tolerance of our mean", "beyond tol.": "beyond the tolerance of our mean",
                   "beyond tol. (no value)": "with no value of ours"}


def fill(text: str, tables: dict, verdicts: dict[str, str] | None = None) -> str:
    """A differences.yaml text with each `{table.path:format}` replaced by that figure (the seed mean), if any,
    and each `{verdict of table.path}` by the figure's computed verdict (`verdicts`: address -> verdict), so
    that no verdict word in the report is fixed prose."""
    def verdict(match: re.Match) -> str:
        found = (verdicts or {}).get(match[1])
        return VERDICT_WORDS.get(found, f"(`{match[1]}`: no verdict in this run)")
    text = re.sub(r"\{verdict of ([A-Za-z0-9_.]+)\}", verdict, text)

    def one(match: re.Match) -> str:
        try:
            value = lookup(tables, match[1])
        except (KeyError, TypeError):
            return f"(`{match[1]}`: not in this run)"
        return "none" if value is None else format(value, match[2] or "g")
    return re.sub(r"\{([A-Za-z0-9_.]+)(?::([^}]*))?\}", one, text)


def figure_digits(address: str) -> int:
    """The decimals a figure is shown with: epochs 1, MNIST tips and the final model's figures 4, others 3."""
    parts = address.split(".")
    return 1 if parts[-1] == "epoch" else 4 if parts[0] == "mnist_tips" or parts[1] == "final" else 3


def other_figure(other: dict, post: str, address: str) -> dict | None:
    """A figure's mean ± std in another backend's table (stages.report.other_tables), or None: an MNIST tips
    row's as it is, a dense net's warning figure from the loss from the logits (as the units compute it)."""
    parts = address.split(".")
    if parts[0] != post:
        return None
    if post == "mnist_tips":
        return other.get(parts[1], {}).get(parts[2])
    if parts[1] == "cross_validation":
        return other["variants"].get(parts[2], {}).get("logits", {}).get(parts[3])
    return None


def backends_table(outside: list[tuple[str, list[str], dict]], tables: dict, shown: dict, tolerance: dict,
                   backend: str | None) -> list[str]:
    """The figures outside their interval (figure_verdicts') that another backend's file also trained: the post's,
    ours and each backend's mean ± std (seeds) with the post's rank and statistical verdict, a column per backend
    (`shown`: stages.report.other_tables'; of two files of one backend for the same post, the first that has the
    figure). Files that replay one order of the training data are left out: the units reshuffle it, and so do
    these columns' runs."""
    by_backend: dict[str, list[str]] = {}
    for table, info in shown.items():
        if info["epoch_order"] == "reshuffled":
            by_backend.setdefault(info["name"], []).append(table)
    rows = []
    for address, cells, record in outside:
        entries = [next((e for t in names if (e := other_figure(tables[t], shown[t]["post"], address))), None)
                   for names in by_backend.values()]
        if any(entries):
            judged = (figure(e, record["post"], address.split(".")[-1], tolerance, figure_digits(address))[0]
                      if e else None for e in entries)
            rows.append([f"`{address}`", cells[0], f"{cells[1]}, {cells[4]}",
                         *(f"{c[1]}, rank {c[3]}, {c[4]}" if c else "-" for c in judged)])
    if not rows:
        return []
    ours = f"ours, Keras 3 on {BACKENDS.get(backend, backend)}" if backend else "ours"
    legend = [f"- {name}: " + "; ".join(f"`{shown[t]['file']}` ({shown[t]['label']})" for t in names) + "."
              for name, names in by_backend.items()]
    return ["", "The same figures on other backends, trained outside DVC by `tools/run_variants.py` (a dense net's "
            "figure from the loss computed from the logits, as our units compute it): mean ± std (seeds), the post's "
            "rank among that backend's seeds and its statistical verdict against them:", "",
            *md_table(f"figure | post | {ours} | {' | '.join(by_backend)}", rows), "", *legend,
            "- What each file records of its params and code: [mnist_tips/table.md](mnist_tips/table.md), "
            "[fashion/table.md](fashion/table.md)."]


def figure_verdicts(tables: dict, references: dict, tolerance: dict) -> list[tuple[str, list[str], dict]]:
    """Every figure a post printed (a numeric leaf of its reference file, whose keys mirror metrics.json;
    `row` only orders the MNIST rows) that this run measured: (address, cells, record)."""
    def walk(reference: dict, node, path: tuple):
        for key, post in reference.items():
            inner = node.get(key) if isinstance(node, dict) else None
            if isinstance(post, dict):
                yield from walk(post, inner, path + (key,))
            elif key != "row" and isinstance(post, (int, float)) and isinstance(inner, dict):
                address = ".".join(path + (key,))
                yield (address, *figure(inner, post, key, tolerance, figure_digits(address)))
    return [found for table, reference in references.items() for found in walk(reference, tables[table], (table,))]


def differences_section(tables: dict, references: dict, tolerance: dict, differences: list[dict],
                        shown: dict | None = None, backend: str | None = None) -> list[str]:
    """Every figure of the posts outside our 95% prediction interval, with what differences.yaml says of
    it (the cause an experiment showed, or the candidates tested), those figures on the other backends
    (`shown`, see backends_table), then the entries about patterns."""
    by_figure = {f: entry for entry in differences for f in entry.get("figures", [])}
    lines = ["## Where we differ from the posts, and why", "",
             "Every figure outside its interval, with the cause an experiment showed or the candidates tested. "
             "The numbers in the text are seed means from the committed results.", ""]
    # One item per entry of differences.yaml (its figures together), then the unexplained ones.
    groups: dict[int, list] = {}
    found = figure_verdicts(tables, references, tolerance)
    outside = [item for item in found if item[2]["statistical"] == "outside"]
    for address, cells, _ in outside:
        groups.setdefault(id(by_figure.get(address)), []).append((address, cells))
    if not groups:
        lines.append("No figure of the posts lies outside its interval.")
    verdicts = {address: record["statistical"] for address, _, record in found}

    def cause(entry: dict) -> str:
        return f"*{entry['found'].capitalize()}:* {fill(entry['text'], tables, verdicts)}"
    for figures in groups.values():
        entry = by_figure.get(figures[0][0])
        listed = "; ".join(f"`{a}`: post {c[0]}, ours {c[1]}, interval {c[2]}, the post's rank {c[3]}, "
                           f"{PRACTICAL_WORDS[c[5]]}" for a, c in figures)
        # Past every seed's interval yet within the tolerance of our mean: a difference too small to chase.
        small = all(c[5] == "within tol." for _, c in figures)
        note = (cause(entry) if entry else "*Within the tolerance; no cause investigated.*" if small
                else "*No cause investigated yet.*")
        lines += [f"- {listed}.", f"  {note}"]
    lines += backends_table(outside, tables, shown or {}, tolerance, backend)
    for entry in differences:
        if not entry.get("figures"):
            lines += ["", f"**{entry['title']}** {cause(entry)}"]
    return lines


def verdicts_record(tables: dict, references: dict, tolerance: dict, outcomes: list) -> dict:
    """reports/verdicts.json: every post figure's two verdicts with its interval, rank and p, and every claim's
    outcome, one entry per line of `git diff`, so that what a change moved is read off the diff. The counts
    are of each post's own figures; a variant of ours (`source: project`) is counted apart, as `<table>_own`."""
    figures = {address: {k: round(v, 6) if isinstance(v, float) else v for k, v in record.items()}
               for address, _, record in figure_verdicts(tables, references, tolerance)}
    counts = {}
    for address, record in figures.items():
        table, variant = address.split(".")[:2]
        key = f"{table}_own" if project_variant(references[table].get(variant, {})) else table
        count = counts.setdefault(key, {"figures": 0, "consistent": 0, "within_tolerance": 0})
        count["figures"] += 1
        count["consistent"] += record["statistical"] == "consistent"
        count["within_tolerance"] += record["practical"] == "within tol."
    return {"figures": figures, "counts": counts, "claims": {o.claim_id: claim_mark(o) for o in outcomes}}


def report_lines(tables: dict, references: dict, tolerance: dict | None, outcomes: list, differences: list[dict],
                 others: dict, params: dict, backend: str | None = None, shown: dict | None = None) -> list[str]:
    """reports/README.md, line by line; without `tolerance` (see `judging`) a quick look that names its profile
    first and shows our figures beside the posts' without judging them: no verdicts, claims or differences."""
    tips = tables["mnist_tips"]
    tips_seeds = sorted({e["test_accuracy"]["seeds"] for e in tips.values()})
    fashion_seeds = tables["fashion"]["final"]["test_accuracy"]["seeds"]
    seeds = (f"{fashion_seeds} seeds" if set(tips_seeds) == {fashion_seeds}
             else f"MNIST tips {'/'.join(map(str, tips_seeds))}, Fashion-MNIST {fashion_seeds} seeds")
    fashion, _ = render_sections(tables["fashion"], references["fashion"], tolerance, settings_of(params["fashion"]), 3,
                                 "fashion/figures/")
    judged = tolerance is not None
    trained = f", trained with Keras 3 on {BACKENDS.get(backend, backend)}." if backend else "."
    head = (["# Reproduction report", "",
             "Generated by `dvc repro report` from the committed runs. Each post's figure is one training run; ours "
             "are", "several seeds of each" + trained] if judged else
            [f"# Quick look: the `{params['profile']}` profile, not the posts' setup", "",
             f"Generated by `dvc repro report` from this profile's runs ({seeds}{trained[:-1]}): the pipeline at a",
             f"small scale, to show it working (the posts' setup is `profile: {POSTS}`)."])
    return [
        *head, *verdict_rule(tolerance), "",
        "## MNIST tips (keras-tips-mnist)", "",
        f"Accuracy from `evaluate` {settings_sentence(params)}, {'/'.join(map(str, tips_seeds))} seeds per row.",
        "Details" + (", and the same rows on other backends" if judged else "")
        + ": [mnist_tips/table.md](mnist_tips/table.md).", "",
        *mnist_rows(tips, references["mnist_tips"], tolerance), "",
        "## Fashion-MNIST dense nets and CNN (fashion-mnist-dnn-cnn)", "",
        "Details: [fashion/table.md](fashion/table.md).", "",
        *fashion, "",
        "![one training image per class](fashion/classes.png)", "",
        *(claims_section(outcomes, seeds) if judged else []),
        *(differences_section({**tables, **others}, references, tolerance, differences, shown, backend)
          if judged else []),
    ]
