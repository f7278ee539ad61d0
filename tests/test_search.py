"""The search stage (stages/search.py): its space and params checks, the lockstep folds it trains, the
files it writes, and through DVC on the smoke profile: its outputs, a resumed interruption, and the
same trial sequence again for one worker and one sampler seed."""

import copy
import json
import math
import os
import re
import signal
import sys
from pathlib import Path

import numpy as np
import optuna
import pytest
import yaml

from lib.common.core import ConfigError, DataError, build_config
from lib.common.paths import unit_files
from lib.results.runs import read_curves
from lib.results.search import (
    axis_position,
    comparison,
    coordinates,
    describe,
    read_study,
    reruns,
    section_lines,
    seed_figure,
    space_lines,
    table_lines,
    winner,
)
from lib.results.stats import prediction_interval, seed_summary
from lib.train.configs import SPACE, DenseVariant, OverfittingRule, RunSettings, Search, searched_unit
from lib.train.overfitting import mean_curves
from stages.search import CODE, fingerprint, suggest, write_outputs
from tests.conftest import ROOT, copy_project, dvc, run, start_dvc

PARAMS = yaml.safe_load((ROOT / "params.yaml").read_text())


def search_of(**changes) -> Search:
    return build_config(Search, {**copy.deepcopy(PARAMS["search"]), **changes}, "search")


@pytest.mark.parametrize(
    "key, entry, message",
    [
        ("units", {"choices": [0, 64]}, "a list of distinct integers from 1 to"),
        ("activation", {"choices": ["relu", "swish"]}, "names among relu, sigmoid, tanh"),
        ("optimizer", {"low": 0, "high": 1}, "low < high"),
        ("learning_rate", {"low": 0.0, "high": 0.1, "log": True}, "low > 0 with log: true"),
        ("dropout_rate", {"low": 0.0, "high": 1.0}, "numbers from 0 to below 1"),
        ("l2", {"choices": []}, "a list of distinct numbers >= 0"),
        ("layers", [1, 2], "{choices: [...]} or {low, high, log}"),
    ],
)
def test_a_bad_space_entry_is_refused_naming_its_key(key, entry, message):
    space = {**PARAMS["search"]["space"], key: entry}
    with pytest.raises(ConfigError, match=rf"search\.space\.{key}: .*{re.escape(message)}"):
        search_of(space=space)


def test_the_space_needs_every_key_and_top_at_most_trials():
    with pytest.raises(ConfigError, match=r"search\.space: .*exactly the keys layers, units, activation"):
        search_of(space={k: v for k, v in PARAMS["search"]["space"].items() if k != "l2"})
    places = ["top1", "top2", "top3", "top4", "top5"]
    with pytest.raises(ConfigError, match=r"search\.top: .*allowed: the places .* at most trials \(4\)"):
        search_of(trials=4, top=places)
    with pytest.raises(ConfigError, match=r"search\.top: 3 is not allowed; allowed: a list of strings"):
        search_of(top=3)
    for wrong in ([], ["top2"], ["top1", "top3"], ["top1", "top1"]):
        with pytest.raises(ConfigError, match=r"search\.top: .*allowed: the places of the best trials in order"):
            search_of(top=wrong)
    assert search_of(trials=4, top=places[:4]).top == tuple(places[:4])
    assert set(search_of().space) == set(SPACE)


def test_a_suggested_trial_is_a_net_the_training_core_builds():
    space = {**search_of().space, "layers": {"choices": [2]}, "units": {"choices": [8, 16]}}
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=0))
    for _ in range(5):
        params = suggest(study.ask(), space)
        variant, settings, activation = searched_unit(params, PARAMS["fashion"]["training"])
        assert isinstance(variant, DenseVariant) and isinstance(settings, RunSettings)
        assert len(variant.hidden_units) == 2 and set(variant.hidden_units) <= {8, 16}
        assert activation in ("relu", "tanh", "sigmoid") and settings.optimizer in ("adam", "rmsprop", "sgd")
        assert 1e-4 <= settings.learning_rate <= 1e-1 and 0 <= variant.dropout_rate <= 0.5
        assert variant.l2 in (0.0, 1e-5, 1e-4, 1e-3)
        assert settings.epochs == PARAMS["fashion"]["training"]["epochs"]  # the post's run settings, kept


def test_the_lockstep_folds_give_the_units_curves_exactly_and_stop_when_told():
    """fit_folds trains the k folds one epoch each in turn: each fold's curves are those of the fashion_cv
    unit's train_fold, to the bit, with dropout too; and after_epoch ends the training."""
    from lib.train import keras_train

    rng = np.random.default_rng(0)
    x = rng.random((60, 8, 8), dtype=np.float32)
    y = (x.mean(axis=(1, 2)) > 0.5).astype(int) + 2 * (x[:, 0, 0] > 0.5)
    settings, variant = RunSettings(epochs=3, batch_size=8), DenseVariant(hidden_units=(16,), dropout_rate=0.3)
    seen = []
    folds = keras_train.fit_folds(
        lambda: keras_train.build_dense((8, 8), (16,), "relu", 0.3, 0.0),
        3,
        x,
        y,
        2,
        settings,
        lambda epoch, curves: seen.append([len(c["loss"]) for c in curves]),
    )
    assert seen == [[1, 1], [2, 2], [3, 3]]
    for fold in range(2):
        train, val = keras_train.fold_indices(60, 2, fold)
        curves, _ = keras_train.train_fold(variant, settings, 3, x[train], y[train], x[val], y[val])
        assert folds[fold] == curves
    stopped = keras_train.fit_folds(
        lambda: keras_train.build_dense((8, 8), (16,), "relu", 0.0, 0.0),
        3,
        x,
        y,
        2,
        settings,
        lambda epoch, curves: epoch == 1,
    )
    assert [len(c["val_loss"]) for c in stopped] == [2, 2]


def test_the_outputs_list_every_trial_the_best_and_the_progress(tmp_path):
    study = optuna.create_study(direction="maximize")
    states = optuna.trial.TrialState
    distributions = {
        "layers": optuna.distributions.CategoricalDistribution([1, 2]),
        "units_1": optuna.distributions.CategoricalDistribution([8, 16]),
    }
    for value, state in ((0.7, states.COMPLETE), (0.5, states.PRUNED), (0.8, states.COMPLETE), (0.6, states.COMPLETE)):
        study.add_trial(
            optuna.trial.create_trial(
                params={"layers": 1, "units_1": 8},
                distributions=distributions,
                state=state,
                value=value if state == states.COMPLETE else None,
                intermediate_values={0: value},
                user_attrs={"warning_epoch": 3, "curves": {"val_accuracy": [value]}},
            )
        )
    best = write_outputs(study, tmp_path / "out", top=2)
    assert [t["number"] for t in best] == [2, 0]
    record = json.loads((tmp_path / "out" / "trials.json").read_text())
    assert record["top"] == [2, 0] and [t["state"] for t in record["trials"]][:2] == ["complete", "pruned"]
    assert record["trials"][0]["warning_epoch"] == 3 and record["trials"][0]["params"] == {"layers": 1, "units_1": 8}
    rows = (tmp_path / "out" / "trials.csv").read_text().splitlines()
    assert rows[0] == "trial,state,value,layers,units_1" and rows[1] == "0,complete,0.7,1,8" and len(rows) == 5
    progress = (tmp_path / "out" / "progress.csv").read_text().splitlines()
    assert progress == ["trial,value,best", "0,0.7,0.7", "1,,0.7", "2,0.8,0.8", "3,0.6,0.8"]


def test_each_trial_lies_on_the_axes_of_the_space_and_the_table_ranks_the_complete_ones():
    space = search_of().space
    assert axis_position("tanh", space["activation"]) == 0.5 and axis_position(2, space["layers"]) == 1.0
    assert axis_position(1e-3, space["learning_rate"]) == pytest.approx(1 / 3)  # log scale: 1e-4 .. 1e-1
    assert axis_position(0.25, space["dropout_rate"]) == 0.5
    net = {
        "layers": 2,
        "units_1": 256,
        "units_2": 64,
        "activation": "relu",
        "optimizer": "adam",
        "learning_rate": 0.00123,
        "dropout_rate": 0.21,
        "l2": 1e-05,
    }
    one_layer = {k: v for k, v in net.items() if k != "units_2"}
    trials = [
        {
            "number": 0,
            "state": "complete",
            "value": 0.88,
            "params": net,
            "warning_epoch": 12,
            "epochs_trained": 22,
            "seconds": 100.0,
        },
        {
            "number": 1,
            "state": "pruned",
            "value": 0.80,
            "params": {**one_layer, "layers": 1},
            "epochs_trained": 6,
            "seconds": 30.0,
        },
        {
            "number": 2,
            "state": "complete",
            "value": 0.89,
            "params": {**net, "units_1": 32},
            "warning_epoch": None,
            "epochs_trained": 40,
            "seconds": 170.0,
        },
    ]
    rows = coordinates(trials, space)
    assert len(rows) == 9 + 8 + 9  # a one-layer net has no units_2 axis; every trial has the value axis
    assert all(0 <= r["position"] <= 1 for r in rows)
    values = {r["trial"]: r["position"] for r in rows if r["axis"] == "value"}
    assert values == {0: pytest.approx(8 / 9, abs=1e-6), 1: 0.0, 2: 1.0}
    assert describe(net) == "dense(256, 64) relu, adam lr 0.00123, dropout 0.21, L2 1e-05"
    summary = summary_for(space, trials, net)
    table = "\n".join(table_lines(summary, trials, {"learning_rate": 0.7, "layers": 0.3}, 10, 0.8864, None))
    assert "3 trials of a seeded TPE search (Optuna) over the space below, 1 of them pruned (33%)" in table
    assert "5 min of trial time in all, 100 s a trial on average, each on seed 0" in table
    assert "| 1 | 2 | dense(32, 64) relu" in table and "| 0.8900 | none in 40 | 170 |" in table
    assert "| 2 | 0 | dense(256, 64) relu" in table and "| `learning_rate` | 0.700 |" in table
    assert "dense(256) relu" not in table  # the pruned trial is not ranked


def figures(values: list[float]) -> dict:
    summary = seed_summary(values)
    return {**summary, "interval": prediction_interval(summary["values"], 0.0)}


def summary_for(space: dict, trials: list[dict], net: dict) -> dict:
    """A summary.json as stages/search_table.py writes it, made up: two re-run places, the winner's test figures."""
    reruns = {
        place: {
            "trial": n,
            "params": net,
            "search_value": 0.9,
            "val_accuracy": seed_summary(v),
            "epoch": seed_summary([20.0, 22.0, 21.0]),
            "warned_seeds": 3,
            "interval": prediction_interval(v, 0.0),
        }
        for place, n, v in (("top1", 2, [0.89, 0.90, 0.91]), ("top2", 0, [0.893, 0.894, 0.895]))
    }
    test = {
        "winner": figures([0.890, 0.891, 0.892]),
        "post_choice": figures([0.880, 0.881, 0.882]),
        "cnn": figures([0.918, 0.919, 0.920]),
    }
    return {
        "trials": len(trials),
        "pruned": sum(t["state"] == "pruned" for t in trials),
        "space": space,
        "search_seed": 0,
        "k": 5,
        "reruns": reruns,
        "winner": winner(reruns),
        "post_choice": "dense(256)",
        "cnn": "30 epochs",
        "test": test,
    }


def test_the_space_is_listed_in_params_order_though_summary_json_sorts_its_keys():
    space = search_of().space
    lines = space_lines(dict(sorted(space.items())))  # as summary.json, written with sorted keys, holds it
    assert [line.split("`")[1] for line in lines] == list(space)
    assert list(space)[:3] == ["layers", "units", "activation"]


def test_the_winner_has_the_highest_lower_end_not_the_best_draw_and_is_compared_as_the_tables_judge():
    space, net = (
        search_of().space,
        {
            "layers": 1,
            "units_1": 64,
            "activation": "relu",
            "optimizer": "adam",
            "learning_rate": 1e-3,
            "dropout_rate": 0.2,
            "l2": 0.0,
        },
    )
    summary = summary_for(space, [{"state": "complete"}, {"state": "pruned"}], net)
    top1, top2 = summary["reruns"]["top1"], summary["reruns"]["top2"]
    assert top1["val_accuracy"]["mean"] > top2["val_accuracy"]["mean"] - 0.01 and max(
        top1["val_accuracy"]["values"]
    ) > max(top2["val_accuracy"]["values"])  # top1 had the best single draw
    assert top2["interval"]["low"] > top1["interval"]["low"]
    assert summary["winner"] == {"place": "top2", "trial": 0, "params": net, "epochs": 21}
    tie = {p: {**e, "interval": {**e["interval"], "low": 0.5}} for p, e in summary["reruns"].items()}
    assert winner(tie)["place"] == "top1"  # a tie goes to the better place
    test = summary["test"]
    assert comparison(test["winner"], test["post_choice"]) == {"difference": 0.01, "outside_both": True}
    assert comparison(test["winner"], test["cnn"]) == {"difference": -0.028, "outside_both": True}
    assert comparison(figures([0.88, 0.89, 0.90]), figures([0.885, 0.886, 0.887]))["outside_both"] is False
    judged = "\n".join(section_lines(summary, 0.8864, {"accuracy": {"absolute": 0.02}}, 3))
    assert "#### The best 2 trials on 3 seeds" in judged and "The winner: **top2**, trial 0," in judged
    assert "| top2 | 0 | dense(64) relu, adam lr 0.001, dropout 0.20, L2 0 | 0.9000 | 0.8940 ± 0.0010 (3) |" in judged
    assert "| the search's winner, top2 (trial 0), 21 epochs | 0.8864 | 0.8910 ± 0.0010 (3) |" in judged
    assert "| the CNN, 30 epochs | - | 0.9190 ± 0.0010 (3) |" in judged
    assert (
        "**It beats the post's choice** (ours, the same seeds): its mean test accuracy is 0.0100 above it, "
        "outside both seeds' intervals"
    ) in judged
    assert "The CNN's is 0.0280 above the winner's, outside both intervals." in judged
    close = {**summary, "test": {**test, "winner": figures([0.877, 0.882, 0.887])}}  # within the spread
    assert (
        "**It neither beats nor falls short of the post's choice** (ours, the same seeds): its mean test accuracy "
        "is 0.0010 above it, not outside both seeds' intervals, so the seeds' spread may explain it."
    ) in "\n".join(section_lines(close, 0.8864, {"accuracy": {"absolute": 0.02}}, 2))
    below = {**summary, "test": {**test, "winner": figures([0.869, 0.870, 0.871])}}
    assert "**It falls short of the post's choice**" in "\n".join(
        section_lines(below, 0.8864, {"accuracy": {"absolute": 0.02}}, 2)
    )
    plain = "\n".join(section_lines(summary, 0.8864, None, 2))  # a profile not judged: no verdict columns
    assert "| model | post | ours: mean ± std (seeds) |" in plain and "statistical" not in plain
    assert "Not judged: this profile is not the posts' setup" in plain and "outside" not in plain


def curves_of(val_loss: list[float]) -> dict:
    return {
        "loss": val_loss,
        "accuracy": [0.5] * len(val_loss),
        "val_loss": val_loss,
        "val_accuracy": [0.8 + i / 1000 for i in range(len(val_loss))],
    }


def test_a_seed_is_scored_at_its_warning_or_its_last_epoch_as_a_trial_is():
    rule = OverfittingRule(patience=2, min_decrease=0.0)
    warned = seed_figure(curves_of([1.0, 0.5, 0.6, 0.7, 0.4]), rule)
    assert warned == {"epoch": 2, "val_loss": 0.5, "val_accuracy": 0.801, "warned": True}
    never = seed_figure(curves_of([1.0, 0.9, 0.8, 0.7]), rule)
    assert never == {"epoch": 4, "val_loss": 0.7, "val_accuracy": 0.803, "warned": False}


def test_a_search_unit_is_named_by_its_place_and_seed():
    unit = unit_files("search_cv@top2-7")
    assert (unit["kind"], unit["variant"], unit["seed"], unit["model"]) == ("search_cv", "top2", 7, None)
    assert unit["out"] == Path("reports/runs/search/cv/top2/seed7")
    assert unit["data"] == Path("data/prepared/fashion_dense.npz")
    final = unit_files("search_final@3")
    assert final["out"] == Path("reports/runs/search/final/seed3")
    assert final["model"] == Path("models/search/final/seed3.keras")
    for name in ("search_cv@top0-1", "search_cv@best1-1", "search_cv@top01-1"):
        with pytest.raises(ConfigError, match="is not a place among the search's best"):
            unit_files(name)
    stages = yaml.safe_load((ROOT / "dvc.yaml").read_text())["stages"]
    assert stages["search_cv"]["matrix"]["rank"] == "${search.top}"  # the places are the params'


def test_a_rerun_of_another_trial_is_stale(tmp_path):
    record = {"top": [5], "trials": [{"number": 5, "params": {}, "value": 0.9}]}
    for fold in range(2):
        folder = tmp_path / "cv/top1/seed0" / f"fold{fold}"
        (folder / "live/plots/metrics/eval").mkdir(parents=True)
        (folder / "live/plots/metrics/train").mkdir(parents=True)
        (folder / "config.json").write_text(json.dumps({"trial": 4, "seed": 0, "k": 2}))
    with pytest.raises(DataError, match=r"trial 4, seed 0, k 2; the search's top1 is trial 5"):
        reruns(record, ["top1"], [0], 2, OverfittingRule(patience=2, min_decrease=0.0), tmp_path)


def test_the_fingerprint_follows_the_params_the_code_names_and_the_data(tmp_path):
    stage = yaml.safe_load((ROOT / "dvc.yaml").read_text())["stages"]["search"]
    assert set(CODE) <= set(stage["deps"])  # what a resumed study must agree on is what DVC watches
    params, data = tmp_path / "params.yaml", tmp_path / "data.npz"
    params.write_text(yaml.safe_dump(PARAMS))
    data.write_bytes(b"images")
    first = fingerprint(params, data)
    assert fingerprint(params, data) == first
    budget = {"trials": 40, "workers": 1, "top": ["top1"]}  # a larger budget extends the study
    params.write_text(yaml.safe_dump({**PARAMS, "search": {**PARAMS["search"], **budget}}))
    assert fingerprint(params, data) == first
    params.write_text(yaml.safe_dump({**PARAMS, "search": {**PARAMS["search"], "startup_trials": 5}}))
    assert fingerprint(params, data) != first
    params.write_text(yaml.safe_dump(PARAMS))
    data.write_bytes(b"other images")
    assert fingerprint(params, data) != first


def trials_of(out: Path) -> list[dict]:
    return json.loads((out / "trials.json").read_text())["trials"]


def sequence(trials: list[dict]) -> list:
    return [(t["number"], t["state"], t["params"], t["value"], t["curves"]) for t in trials]


def test_the_smoke_search_writes_its_trials_through_dvc(smoke):
    project, search = smoke["path"], smoke["params"]["search"]
    trials = trials_of(project / "reports/search")
    assert [t["number"] for t in trials] == list(range(search["trials"]))
    for t in trials:
        assert t["state"] in ("complete", "pruned")
        assert len(t["curves"]["val_loss"]) == t["epochs_trained"] <= smoke["params"]["fashion"]["training"]["epochs"]
        if t["state"] == "complete" and t.get("warning_epoch"):
            assert t["value"] == t["curves"]["val_accuracy"][t["warning_epoch"] - 1]
        assert set(t["params"]) >= {"layers", "units_1", "activation", "optimizer", "learning_rate"}
    best = max((t for t in trials if t["state"] == "complete"), key=lambda t: t["value"])
    assert json.loads((project / "reports/search/trials.json").read_text())["top"] == [best["number"]]
    assert best["value"] > 0.5  # ten classes on 500 images a fold: well above chance (0.1)
    lock = yaml.safe_load((project / "dvc.lock").read_text())["stages"]["search"]
    assert [o["path"] for o in lock["outs"]] == ["data/search/study.journal", "reports/search"]
    assert "search" not in dvc(["status", "search"], project, env=smoke["env"]).stdout
    table = (project / "reports/search_table/table.md").read_text()
    assert f"{search['trials']} trials of a seeded TPE search" in table and f"| 1 | {best['number']} | dense(" in table
    coordinates = (project / "reports/search_table/coordinates.csv").read_text().splitlines()
    assert coordinates[0] == "trial,state,objective,axis,position,label"
    assert len(coordinates) - 1 == sum(len(t["params"]) + 1 for t in trials)  # each parameter, and the value
    importance = (project / "reports/search_table/importance.csv").read_text().splitlines()
    assert importance[0] == "parameter,importance" and len(importance) > 1


def test_the_best_trial_is_rerun_on_every_seed_and_its_winner_trained_and_tested(smoke):
    """Through DVC on the smoke profile: the re-run on the search's own seed repeats the trial's curves to the
    bit (one training function for both), every seed's folds are recorded, and the winner's final models train
    its params for its mean warning epoch; the table puts their test accuracy beside the post's choice's."""
    project, params = smoke["path"], smoke["params"]
    record = json.loads((project / "reports/search/trials.json").read_text())
    trial = next(t for t in record["trials"] if t["number"] == record["top"][0])
    k, seed = params["fashion"]["cross_validation"]["k"], params["search"]["seed"]
    for s in params["fashion"]["seeds"]:
        folds = [project / f"reports/runs/search/cv/top1/seed{s}/fold{f}" for f in range(k)]
        assert all(json.loads((f / "config.json").read_text())["trial"] == trial["number"] for f in folds)
        mean = mean_curves([read_curves(f) for f in folds])
        if s == seed:
            assert [round(float(v), 6) for v in mean["val_accuracy"]] == trial["curves"]["val_accuracy"]
    chosen = json.loads((project / "reports/search_winner/winner.json").read_text())
    found = json.loads((project / "reports/search_winner/reruns.json").read_text())["places"]["top1"]
    assert chosen["place"] == "top1" and chosen["epochs"] == math.floor(found["epoch"]["mean"] + 0.5)
    assert found["val_accuracy"]["seeds"] == len(params["fashion"]["seeds"]) and found["interval"]["low"] is not None
    for s in params["fashion"]["seeds"]:
        config = json.loads((project / f"reports/runs/search/final/seed{s}/config.json").read_text())
        assert (config["trial"], config["epochs"], config["seed"]) == (chosen["trial"], chosen["epochs"], s)
        assert len(read_curves(project / f"reports/runs/search/final/seed{s}")["loss"]) == chosen["epochs"]
        assert (project / f"models/search/final/seed{s}.keras").is_file()
    summary = json.loads((project / "reports/search_table/summary.json").read_text())
    assert 0.5 < summary["test"]["winner"]["mean"] <= 1 and summary["winner"] == chosen
    table = (project / "reports/search_table/table.md").read_text()
    assert "| the search's winner, top1 (trial" in table and "| the post's choice, dense(256) relu" in table
    assert "## Beyond the post: automated search" in (project / "reports/README.md").read_text()


def smoke_copy(tmp_path: Path, smoke: dict, cache: Path, **search) -> Path:
    """A copy of the smoke project (sharing its DVC cache) with its prepared data, `search` changed."""
    project = copy_project(tmp_path / "project", cache, smoke=True)
    params = yaml.safe_load((project / "params.yaml").read_text())
    params["search"].update(search)
    (project / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    dvc(["repro", "preprocess@fashion_dense"], project, env=smoke["env"])
    return project


def test_an_interrupted_search_resumes_without_redoing_finished_trials(smoke, dvc_cache, tmp_path):
    project = smoke_copy(tmp_path, smoke, dvc_cache, trials=4)
    proc = start_dvc(["repro", "search"], project, env=smoke["env"])
    lines = []
    for line in proc.stdout:  # until trial 1 is training: trial 0 is done
        lines.append(line)
        if line.startswith("trial 1 epoch 2:"):
            break
    os.killpg(proc.pid, signal.SIGINT)
    proc.communicate(timeout=120)
    assert proc.returncode != 0, "".join(lines[-20:])
    before = read_study(project / "data/search/study.journal").trials
    assert [t.state.name for t in before[:2]] == ["COMPLETE", "RUNNING"]
    assert not (project / "reports/search").exists()  # nothing half-written
    again = dvc(["repro", "search"], project, env=smoke["env"]).stdout
    assert "1 trials done, 1 interrupted ones queued again" in again
    assert "trial 0 (worker 0)" not in again and "trial 0 epoch" not in again
    trials = trials_of(project / "reports/search")
    assert len(trials) == 4 and trials[0]["value"] == before[0].value and trials[0]["params"] == before[0].params
    assert trials[1]["number"] == 2 and trials[1]["params"] == before[1].params  # trial 1, queued again first
    assert "search" not in dvc(["status", "search"], project, env=smoke["env"]).stdout


def test_one_worker_and_one_sampler_seed_repeat_the_trial_sequence(smoke, tmp_path):
    """And a budget grown midway (2 trials, then 3 on the same study file) repeats it too: the study is extended."""
    project, outs = smoke["path"], []
    params = yaml.safe_load((project / "params.yaml").read_text())
    trials = params["search"]["trials"]
    for seed, budget, study in ((0, trials, 0), (0, trials, 1), (1, trials, 2), (0, trials - 1, 3), (0, trials, 3)):
        other = tmp_path / f"params{len(outs)}.yaml"
        other.write_text(
            yaml.safe_dump({**params, "search": {**params["search"], "sampler_seed": seed, "trials": budget}})
        )
        out = tmp_path / f"run{study}"
        run(
            [
                sys.executable,
                "-m",
                "stages.search",
                "--params",
                str(other),
                "--data",
                "data/prepared/fashion_dense.npz",
                "--study",
                str(out / "study.journal"),
                "--out",
                str(out / "search"),
            ],
            project,
        )
        outs.append(sequence(trials_of(out / "search")))
    assert outs[0] == outs[1] == sequence(trials_of(project / "reports/search"))
    assert [t[2] for t in outs[2]] != [t[2] for t in outs[0]]  # another sampler seed, other trials
    assert outs[3] == outs[0][:-1] and outs[4] == outs[0]  # the same trials, the last one added to the study
