"""Beyond the Fashion-MNIST post: its closing advice done, an automated search (Optuna: a seeded TPE sampler,
median pruning on the fold-mean val_accuracy curve) over the dense nets of its 5-fold cross-validation, for
the post's own objective, the fold-mean val_accuracy at its overfitting warning. The study is one journal
file that DVC keeps (persist), so an interrupted search resumes where it stopped; the trials run side by side
on Dask workers that share it. Writes every trial (params, curves, figures) and the best, one for each place
`search.top` names."""

from __future__ import annotations

import argparse
import hashlib
import json
import logging
import subprocess
import sys
import time
from pathlib import Path

import optuna

from lib.common.core import (
    ConfigError,
    atomic_paths,
    build_config,
    die_with_parent,
    load_params,
    run_stage,
    write_json,
)
from lib.train.configs import (
    CrossValidation,
    OverfittingRule,
    Search,
    Training,
    check_fits,
    run_settings,
    searched_unit,
)

STUDY = "search"
LOCK = "stages.search-ask"  # a Dask lock: one worker at a time counts the trials and asks for the next
CODE = ("lib/common", "lib/train", "stages/search.py")  # what a trial runs: the stage's code deps in dvc.yaml
# How many trials, on how many workers, how many kept: a larger `search.trials` extends the study (its trials are
# those a search of that many from the start would make, with one worker), not a new one.
BUDGET = ("trials", "workers", "top")
DONE = (optuna.trial.TrialState.COMPLETE, optuna.trial.TrialState.PRUNED)
log = logging.getLogger("stages.search")


def settings_of(params: Path) -> dict:
    """What a trial depends on, validated: `search`, the post's run settings, folds and warning rule, the backend."""
    fashion = load_params(params, "fashion")
    return {"search": build_config(Search, load_params(params, "search"), "search"),
            "training": fashion["training"], "settings": run_settings(fashion["training"]),
            "k": build_config(CrossValidation, fashion["cross_validation"], "fashion.cross_validation").k,
            "rule": build_config(OverfittingRule, fashion["overfitting"], "fashion.overfitting"),
            "backend": build_config(Training, load_params(params, "training"), "training").backend}


def fingerprint(params: Path, data: Path) -> str:
    """What the study's trials were made from: the params a trial reads (not the budget, BUDGET), the code (CODE)
    and the data. A study file of another fingerprint is not resumed: DVC reruns this stage because one of them
    changed, so its trials would be stale; a file of the same one is an interrupted search, or one whose budget
    grew, resumed."""
    digest = hashlib.sha256()
    fashion = load_params(params, "fashion")
    search = {key: value for key, value in load_params(params, "search").items() if key not in BUDGET}
    digest.update(json.dumps([search, load_params(params, "training"), fashion["training"],
                              fashion["cross_validation"], fashion["overfitting"]], sort_keys=True).encode())
    root = Path(__file__).resolve().parents[1]
    for path in sorted(p for name in CODE for p in [root / name, *(root / name).glob("*.py")] if p.is_file()):
        digest.update(str(path.relative_to(root)).encode() + path.read_bytes())
    digest.update(Path(data).read_bytes())
    return digest.hexdigest()


def storage(path: Path) -> optuna.storages.JournalStorage:
    return optuna.storages.JournalStorage(optuna.storages.journal.JournalFileBackend(str(path)))


def open_study(path: Path, print_: str, trials: int) -> optuna.Study:
    """The study in `path`, resumed when its fingerprint is `print_` and it holds at most `trials` finished trials
    (a trial an interruption left running is failed and queued again, first), else started anew."""
    if path.exists():
        try:
            study = optuna.load_study(study_name=STUDY, storage=storage(path))
            found = study.user_attrs.get("fingerprint")
        except KeyError:  # a file with no study in it (interrupted as it was created)
            found = None
        done = len(study.get_trials(deepcopy=False, states=DONE)) if found == print_ else 0
        if found == print_ and done > trials:
            log.info(f"search: {path} holds {done} trials, more than search.trials ({trials}): starting a new study")
        elif found == print_:
            stale = study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.RUNNING,))
            for trial in stale:
                study.tell(trial.number, state=optuna.trial.TrialState.FAIL)
                study.enqueue_trial(trial.params)
            log.info(f"search: resuming {path}: {done} trials done"
                     + (f", {len(stale)} interrupted ones queued again" if stale else ""))
            return study
        else:
            log.info(f"search: {path} was made from other params, code or data: starting a new study")
        path.unlink()
    path.parent.mkdir(parents=True, exist_ok=True)
    study = optuna.create_study(study_name=STUDY, storage=storage(path), direction="maximize")
    study.set_user_attr("fingerprint", print_)
    return study


def suggest(trial: optuna.Trial, space: dict) -> dict:
    """A trial's params from `search.space`: `layers`, then `units_<i>` for each layer, then the rest."""
    def one(name: str, key: str | None = None):
        entry = space[key or name]
        if "choices" in entry:
            return trial.suggest_categorical(name, entry["choices"])
        if all(isinstance(entry[end], int) for end in ("low", "high")):
            return trial.suggest_int(name, entry["low"], entry["high"], log=entry["log"])
        return trial.suggest_float(name, entry["low"], entry["high"], log=entry["log"])
    layers = one("layers")
    return {"layers": layers, **{f"units_{i + 1}": one(f"units_{i + 1}", "units") for i in range(layers)},
            **{key: one(key) for key in ("activation", "optimizer", "learning_rate", "dropout_rate", "l2")}}


def run_trial(trial: optuna.Trial, params: dict, keras_train, arrays: dict, setup: dict) -> float:
    """Train the trial's net on every fold side by side until the fold-mean val_loss warns (the objective:
    the fold-mean val_accuracy there; at the last epoch if it never warns), or until the pruner stops it.
    Its fold-mean curves and figures go into the trial's user attributes either way."""
    variant, settings, activation = searched_unit(params, setup["training"])
    started, found = time.perf_counter(), {}

    def each_epoch(epoch: int, mean: dict, warned: int | None) -> None:
        found.update(curves={name: [round(float(v), 6) for v in values] for name, values in mean.items()})
        log.info(f"trial {trial.number} epoch {epoch + 1}: fold-mean val_loss {mean['val_loss'][epoch]:.4f} "
                 f"val_accuracy {mean['val_accuracy'][epoch]:.4f}")
        if warned is not None:
            found.update(warning_epoch=warned + 1)
            return
        trial.report(float(mean["val_accuracy"][epoch]), epoch)
        if trial.should_prune():
            raise optuna.TrialPruned()

    try:
        keras_train.folds_until_warning(variant, settings, activation, setup["search"].seed, arrays["x_train"],
                                        arrays["y_train"], setup["k"], setup["rule"], each_epoch)
    finally:
        if curves := found.get("curves"):
            at = found.get("warning_epoch", len(curves["val_loss"])) - 1
            for key, value in {**found, "epochs_trained": len(curves["val_loss"]), "val_loss": curves["val_loss"][at],
                               "seconds": round(time.perf_counter() - started, 1)}.items():
                trial.set_user_attr(key, value)
    return curves["val_accuracy"][at]


def pruner(search: Search) -> optuna.pruners.MedianPruner:
    return optuna.pruners.MedianPruner(n_startup_trials=search.startup_trials, n_warmup_steps=search.warmup_epochs)


def worker_trials(study_path: str, params_path: str, data: str, worker: int) -> int:
    """A Dask task: ask for trials until the study holds `search.trials` (each ask under one lock, so the
    workers together make exactly that many) and train each in a process of its own (`--trial`): Keras
    draws its initial weights and dropout seeds from Python's `random`, which the worker's own threads
    also draw from, so a trial trained here would not repeat. Returns how many this worker ran."""
    from distributed import Lock

    search, lock, ran = settings_of(Path(params_path))["search"], Lock(LOCK), 0
    while True:
        with lock:
            journal = storage(Path(study_path))
            made = journal.get_all_trials(journal.get_study_id_from_name(STUDY), deepcopy=False)
            if sum(t.state != optuna.trial.TrialState.FAIL for t in made) >= search.trials:
                return ran
            # Seeded by worker and by how many trials exist, so a resumed study does not draw its first ones again.
            sampler = optuna.samplers.TPESampler(seed=search.sampler_seed + 1000 * worker + len(made),
                                                 n_startup_trials=search.startup_trials, constant_liar=True)
            study = optuna.load_study(study_name=STUDY, storage=journal, sampler=sampler, pruner=pruner(search))
            trial = study.ask()
            params = suggest(trial, search.space)
        print(f"trial {trial.number} (worker {worker}): {params}", flush=True)
        done = subprocess.run([sys.executable, "-m", "stages.search", "--trial", str(trial.number), "--study",
                               study_path, "--params", params_path, "--data", data], preexec_fn=die_with_parent)
        if done.returncode:
            raise RuntimeError(f"trial {trial.number} failed (exit {done.returncode}); its lines are above")
        ran += 1


def train_trial(number: int, study_path: Path, params_path: Path, data: Path) -> None:
    """`--trial N`: train trial N of the study (asked by a worker, its params set) and tell the study."""
    from lib.train.unit import load_arrays, start_keras

    setup = settings_of(params_path)
    journal = storage(study_path)
    study = optuna.load_study(study_name=STUDY, storage=journal, pruner=pruner(setup["search"]))
    study_id = journal.get_study_id_from_name(STUDY)
    trial = optuna.Trial(study, journal.get_trial_id_from_study_id_trial_number(study_id, number))
    frozen = study.trials[number]
    keras_train, arrays = start_keras(setup["backend"]), load_arrays(data)
    try:
        value = run_trial(trial, frozen.params, keras_train, arrays, setup)
    except optuna.TrialPruned:
        study.tell(number, state=optuna.trial.TrialState.PRUNED)
        log.info(f"trial {number}: pruned after epoch {trial.user_attrs['epochs_trained']}")
    except Exception:  # an interrupt leaves it running: a resumed search queues it again
        study.tell(number, state=optuna.trial.TrialState.FAIL)
        raise
    else:
        study.tell(number, value)
        log.info(f"trial {number}: val_accuracy {value:.4f} at epoch "
                 f"{trial.user_attrs.get('warning_epoch', 'none (no warning)')}, {trial.user_attrs['seconds']} s")


def trials_record(study: optuna.Study) -> list[dict]:
    """Every trial as reports/search/trials.json holds it, in the order they were made."""
    return [{"number": t.number, "state": t.state.name.lower(), "value": t.value, "params": t.params,
             **t.user_attrs} for t in study.get_trials() if t.state in DONE]


def write_outputs(study: optuna.Study, out: Path, top: int) -> list[dict]:
    """trials.json (every trial), trials.csv (one row a trial: the parallel-coordinates plot's data) and
    progress.csv (the best value after each trial), written together; returns the `top` best trials."""
    trials = trials_record(study)
    complete = sorted((t for t in trials if t["state"] == "complete"), key=lambda t: (-t["value"], t["number"]))
    keys = sorted({k for t in trials for k in t["params"]}, key=lambda k: (k.startswith("units_"), k))
    with atomic_paths(out) as (tmp,):
        tmp.mkdir()
        write_json(tmp / "trials.json", {"trials": trials, "top": [t["number"] for t in complete[:top]]})
        rows = [",".join(["trial", "state", "value", *keys])]
        rows += [",".join(map(str, [t["number"], t["state"], "" if t["value"] is None else round(t["value"], 6),
                                    *(t["params"].get(k, "") for k in keys)])) for t in trials]
        (tmp / "trials.csv").write_text("\n".join(rows) + "\n")
        best, lines = None, ["trial,value,best"]
        for t in trials:
            if t["state"] == "complete":
                best = t["value"] if best is None else max(best, t["value"])
            value = round(t["value"], 6) if t["state"] == "complete" else ""  # a pruned one's is where it stopped
            lines.append(f"{t['number']},{value},{'' if best is None else round(best, 6)}")
        (tmp / "progress.csv").write_text("\n".join(lines) + "\n")
    return complete[:top]


def main(argv: list[str] | None) -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--params", default=Path("params.yaml"), type=Path)
    parser.add_argument("--data", required=True, type=Path, help="the prepared Fashion-MNIST .npz (dense)")
    parser.add_argument("--study", required=True, type=Path, help="the study's journal file (resumed if it fits)")
    parser.add_argument("--out", type=Path, help="the folder of trials.json, trials.csv, progress.csv")
    parser.add_argument("--trial", type=int, help=argparse.SUPPRESS)  # a worker's: train one trial
    args = parser.parse_args(argv)
    if args.trial is not None:
        return train_trial(args.trial, args.study, args.params, args.data)
    if args.out is None:
        parser.error("--out is required")
    setup = settings_of(args.params)
    search = setup["search"]
    if not args.data.is_file():
        raise ConfigError(f"--data {args.data}: no such prepared file; run `dvc repro preprocess` first")
    import numpy as np

    with np.load(args.data) as npz:
        images = len(npz["y_train"])
    check_fits(setup["settings"].batch_size, images - images // setup["k"], "fashion.training.batch_size",
               "the images a fold trains on")
    optuna.logging.set_verbosity(optuna.logging.WARNING)  # the trials' own lines say what happens
    study = open_study(args.study, fingerprint(args.params, args.data), search.trials)

    from distributed import Client, LocalCluster

    logging.getLogger("distributed").setLevel(logging.WARNING)  # its workers' comings and goings
    with LocalCluster(n_workers=search.workers, threads_per_worker=1, processes=True,
                      dashboard_address=":0") as cluster, Client(cluster) as client:
        log.info(f"search: {search.trials} trials on {search.workers} Dask workers (dashboard {client.dashboard_link})")
        futures = [client.submit(worker_trials, str(args.study), str(args.params), str(args.data), worker,
                                 pure=False, key=f"search-worker-{worker}") for worker in range(search.workers)]
        ran = client.gather(futures)
    study = optuna.load_study(study_name=STUDY, storage=storage(args.study))
    best = write_outputs(study, args.out, len(search.top))
    states = [t.state for t in study.get_trials(states=DONE)]
    log.info(f"search: {len(states)} trials ({states.count(DONE[1])} pruned; {sum(ran)} run now), the best: "
             + "; ".join(f"trial {t['number']} {t['value']:.4f}" for t in best) + f" -> {args.out}")


if __name__ == "__main__":
    run_stage(main)
