"""Results made outside DVC by `tools.run_variants` (another Keras backend or machine), read once:
the MNIST tips rows' summaries and the Fashion-MNIST cross-validation's warning figures per
definition of the validation loss, with which side of our means the post's figures fall on."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from lib.common.core import DataError
from lib.results.claims import in_post_order
from lib.results.runs import METRICS, read_json
from lib.results.stats import mean_std, seed_summary, warning_summary
from lib.train.configs import cv_params


def backend_summary(path: Path | None) -> tuple[dict, dict]:
    """Mean +- std per variant from a `tools.run_variants` result file (another backend or
    machine, run outside DVC), and the file itself (what it records of how it was made)."""
    if path is None:
        return {}, {}
    data = json.loads(path.read_text())
    per_variant: dict[str, dict[str, list]] = {}
    for run in data["runs"]:
        for m in METRICS:
            per_variant.setdefault(run["variant"], {k: [] for k in METRICS})[m].append(run[m])
    return {v: {m: mean_std(vals) for m, vals in ms.items()} for v, ms in per_variant.items()}, data


def expected_params(fashion: dict) -> dict[str, dict]:
    """Per dense variant, its params as `tools.run_variants` records them (lib.train.configs.cv_params)."""
    return {name: cv_params(fashion, name) for name in fashion["variants"]}


DEFINITIONS = {"logits": "val_loss_logits", "clipped": "val_loss_clipped", "keras": "val_loss"}


def other_backend(path: Path | None, rule, expected_params: dict[str, dict]) -> dict:
    """The post's warning figures from a `tools.run_variants --post fashion` file (the same
    cross-validation on another Keras backend, outside DVC), per variant and per definition of
    the validation loss: `logits` and `clipped` recomputed on the same weights after each epoch,
    `keras` as the backend's Keras reported it. {} without a file. Refuses a file whose params
    differ from the units' (`expected_params`, variant -> params as the file records them):
    those are left out and named under `other_params`."""
    if path is None:
        return {}
    data = read_json(path)
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
    """Which side of the seed mean the post's dense-net figures fall on, in our units (`ours`) and
    on the other backend (loss from the logits on both), over the variants both have: how many
    warn later / have a lower val_loss than the mean, and the mean of post - mean."""
    refs = reference.get("cross_validation", {})
    variants = [v for v in in_post_order(cv, refs) if v in other.get("variants", {}) and refs.get(v)]
    out = {"variants": len(variants)}
    for name, get in (("ours", lambda v, m: cv[v][m]["mean"]), ("other", lambda v, m: other["variants"][v]["logits"][m]["mean"])):
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
