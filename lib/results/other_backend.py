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
from lib.results.stats import seed_summaries
from lib.train.configs import cv_params
from lib.train.overfitting import WARNING, warning_summary

DEFINITIONS = {"logits": "val_loss_logits", "clipped": "val_loss_clipped", "keras": "val_loss"}
BACKENDS = {"tensorflow": "TensorFlow", "jax": "JAX"}  # how the tables name a Keras backend
KERAS2 = "tf_keras"  # tools.run_variants' label of Keras 2 (the tf-keras package), which runs on TensorFlow
# How each computes the cross-entropy of a softmax output (the library's source; Keras 2 on TensorFlow, like
# Keras 3 there, takes the logits behind a Softmax op in a compiled graph).
LOSS_FROM = {"tensorflow": "from the logits behind the softmax", KERAS2: "from the logits behind the softmax",
             "jax": "from the probabilities clipped to [1e-7, 1 - 1e-7], as standalone Keras 2 did"}


def library(backend: str) -> str:
    """The library a `tools.run_variants` backend's Keras runs on, named as its module (Keras 2 on TensorFlow)."""
    return "tensorflow" if backend == KERAS2 else backend


def versions_and_library(data: dict) -> tuple[dict, str]:
    """A `tools.run_variants` file's library versions (the first files kept only Keras's, at the top level) and
    its library."""
    return data.get("versions") or {"keras": data["keras"]}, library(data["backend"])


def backend_name(data: dict) -> str:
    """What trained a `tools.run_variants` file, without its machine: `Keras 2 on TensorFlow`, `Keras 3 on JAX`."""
    versions, library = versions_and_library(data)
    return f"Keras {versions['keras'].split('.')[0]} on {BACKENDS.get(library, library)}"


def backend_label(data: dict) -> str:
    """backend_name with the versions and the devices (or the machine): `Keras 3.15.1 on JAX 0.10.2, cpu:0`."""
    versions, library = versions_and_library(data)
    on = f"{BACKENDS.get(library, library)} {versions.get(library, '')}".rstrip()
    return f"Keras {versions['keras']} on {on}, {', '.join(data['devices']) or data['machine']}"


def epoch_order(data: dict) -> str:
    """How a file's runs ordered the training data across epochs, `reshuffled` or `replayed`; for files written
    before tools.run_variants recorded it: JAX reshuffles, seeded Keras 3 on TensorFlow replays."""
    return data.get("epoch_order", "reshuffled" if data["backend"] == "jax" else "replayed")


INFO = ("name", "label", "file", "epoch_order")  # backend_info's keys, also in other_backend's summary


def backend_info(data: dict, path: Path) -> dict:
    """What the tables say of a `tools.run_variants` file: backend_name, backend_label, the file, epoch_order."""
    return dict(zip(INFO, (backend_name(data), backend_label(data), str(path), epoch_order(data))))


def backend_summary(path: Path | None) -> tuple[dict, dict]:
    """Per variant, each metric's mean +- std and seed values from a `tools.run_variants` MNIST tips file, and the
    file itself with its `file` name ({} without)."""
    if path is None:
        return {}, {}
    data = json.loads(path.read_text())
    per_variant: dict[str, list] = {}
    for run in data["runs"]:
        per_variant.setdefault(run["variant"], []).append(run)
    summary = {v: seed_summaries(runs, METRICS) for v, runs in per_variant.items()}
    return summary, {**data, "file": str(path)}


def expected_params(fashion: dict) -> dict[str, dict]:
    """Per dense variant, its params as `tools.run_variants` records them (lib.train.configs.cv_params)."""
    return {name: cv_params(fashion, name) for name in fashion["variants"]}


def other_backend(path: Path | None, rule, expected_params: dict[str, dict]) -> dict:
    """The post's warning figures from a `tools.run_variants --post fashion` file ({} without), per variant and
    definition of the val_loss (DEFINITIONS); variants with other params are only named (`other_params`)."""
    if path is None:
        return {}
    data = read_json(path)
    if data.get("post") != "fashion":
        raise DataError(f"{path}: not a Fashion-MNIST file of tools.run_variants (post: {data.get('post')!r})")
    differ = sorted(v for v, p in data["params"].items() if v not in expected_params or p != expected_params[v])
    variants: dict[str, dict] = {}
    for run in (r for r in data["runs"] if r["variant"] not in differ):
        curves = {k: np.asarray(v) for k, v in run["curves"].items()}
        entry = variants.setdefault(run["variant"], {"seeds": [], **{d: [] for d in DEFINITIONS}, "clip_gap": 0.0,
                                                     "keras_gap": {"logits": 0.0, "clipped": 0.0}})
        entry["seeds"].append(run["seed"])
        for definition, key in DEFINITIONS.items():
            entry[definition].append(warning_summary({**curves, "val_loss": curves[key]}, rule))
        # Keras's own val_loss is one of the two definitions; which one, and how closely, is measured here.
        for definition in ("logits", "clipped"):
            gap = float(np.max(np.abs(curves["val_loss"] - curves[DEFINITIONS[definition]])))
            entry["keras_gap"][definition] = max(gap, entry["keras_gap"][definition])
        clip = float(np.max(curves["val_loss_logits"] - curves["val_loss_clipped"]))
        entry["clip_gap"] = max(clip, entry["clip_gap"])
    summary = {variant: {"seeds": e["seeds"], "keras_gap": e["keras_gap"], "clip_gap": round(e["clip_gap"], 6),
                         **{d: seed_summaries(e[d], WARNING) for d in DEFINITIONS},
                         "epoch_moved": sum(a["epoch"] != b["epoch"] for a, b in zip(e["logits"], e["clipped"]))}
               for variant, e in variants.items()}
    return {**backend_info(data, path), "commit": data["code"]["commit"], "variants": summary, "other_params": differ}


def gap_pattern(cv: dict, other: dict, reference: dict) -> dict:
    """Which side of the seed mean the post's dense-net figures fall on, in our units (`ours`) and on the other
    backend (the loss from the logits on both), over the variants both have; and the definition's effect alone."""
    refs = reference.get("cross_validation", {})
    variants = [v for v in in_post_order(cv, refs) if v in other.get("variants", {}) and refs.get(v)]
    out = {"variants": len(variants)}
    means = {"ours": lambda v, m: cv[v][m]["mean"], "other": lambda v, m: other["variants"][v]["logits"][m]["mean"]}
    for name, get in means.items():
        side = {}
        for metric, word, sign in (("epoch", "later", 1), ("val_loss", "lower", -1)):
            diffs = [refs[v][metric] - get(v, metric) for v in variants if get(v, metric) is not None]
            side[f"{metric}_{word}"] = sum(sign * d > 0 for d in diffs)
            side[f"{metric}_difference"] = round(float(np.mean(diffs)), 6) if diffs else None
        out[name] = side
    # The definition alone, over every (variant, seed) run of the other backend: how many warn
    # at another epoch when the loss is clipped, the mean shift, and the largest loss gap.
    epochs = [zip(*(other["variants"][v][d]["epoch"]["values"] for d in ("logits", "clipped"))) for v in variants]
    pairs = [(a, b) for runs in epochs for a, b in runs if None not in (a, b)]
    out["definition"] = {
        "runs": len(pairs), "epoch_moved": sum(a != b for a, b in pairs),
        "epoch_shift": round(float(np.mean([b - a for a, b in pairs])), 6) if pairs else None,
        "largest_gap": max((other["variants"][v]["clip_gap"] for v in variants), default=None),
    }
    return out
