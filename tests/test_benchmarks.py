"""The benchmark harness's arithmetic: FLOP counts of the models against hand counts, which table and
seed a stage's time counts towards, and what the report makes of the records."""

import json
from pathlib import Path

import pytest

from benchmarks.render import goals, minutes, render
from benchmarks.throughput import EpochTimer, forward_flops
from lib.common.paths import parse_unit, table_of
from lib.train.keras_train import build_cnn, build_dense
from tools.timing import RUNNING, SKIPPED, current_name, ran_stages


def test_dense_forward_flops_are_two_per_multiply_add():
    assert forward_flops(build_dense((28, 28), (64,))) == 2 * (784 * 64 + 64 * 10)
    assert forward_flops(build_dense((784,), (689, 689))) == 2 * (784 * 689 + 689 * 689 + 689 * 10)


def test_cnn_forward_flops_count_every_output_pixel():
    conv1 = 26 * 26 * 32 * 3 * 3 * 1
    conv2 = 11 * 11 * 64 * 3 * 3 * 32
    conv3 = 3 * 3 * 64 * 3 * 3 * 64
    dense = 576 * 64 + 64 * 10
    assert forward_flops(build_cnn()) == 2 * (conv1 + conv2 + conv3 + dense)


@pytest.mark.parametrize(
    "stage, table",
    [
        ("mnist_tips@deep_relu-0", "mnist_tips"),
        ("mnist_tips_table", "mnist_tips"),
        ("fashion_cv@dense64-1-4", "fashion"),
        ("fashion_cv@dense64-1", "fashion"),
        ("fashion_cnn@2", "fashion"),
        ("fashion_table", "fashion"),
        ("fetch@mnist", "data"),
        ("preprocess@fashion_cnn", "data"),
        ("noise@3", "data"),
        ("check_params", "data"),
        ("report", "report"),
    ],
)
def test_stage_times_are_grouped_by_table(stage, table):
    assert table_of(stage) == table


@pytest.mark.parametrize(
    "stage, seed",
    [
        ("mnist_tips@deep_relu-7", 7),
        ("mnist_tips_noisy@noisy_dropout-12", 12),
        ("fashion_cv@dense64x2_dropout02-8-4", 8),
        ("fashion_cv@dense64x2_dropout02-8", 8),
        ("fashion_final@9", 9),
        ("fashion_cnn@0", 0),
        ("fashion_table", None),
        ("noise@4", None),
        ("preprocess@fashion_cnn", None),
        ("report", None),
    ],
)
def test_a_training_units_seed_is_read_from_its_stage_name(stage, seed):
    # the committed records name a fold of a fashion_cv unit `fashion_cv@<variant>-<seed>-<fold>`
    assert (parse_unit(current_name(stage)) or {}).get("seed") == seed


def test_the_three_seed_goal_counts_only_the_units_of_seeds_0_to_2():
    tables = {"fashion": {"stages": 1, "seconds": 600.0, "slowest": ("fashion_cnn@0", 600.0), "side_by_side": 0}}
    data = {
        "stage_times": {"tables": tables, "stage_names": ["fashion_cnn@0"]},
        "training_units": ["fashion_cnn@0", "fashion_cnn@5", "search_cv@top1-0", "search_final@1"],
    }
    row = next(line for line in goals(data) if "3 seeds" in line)
    assert row.endswith("| met |")  # the search's units count toward the search's own goal
    data["training_units"] = ["fashion_cnn@0", "fashion_cnn@1"]
    row = next(line for line in goals(data) if "3 seeds" in line)
    assert "incomplete: 1 fashion training units not timed yet" in row


def test_the_extra_seeds_are_reported_per_kind_of_stage(tmp_path):
    import json

    from benchmarks.measure import records_summary

    def rec(finished, seconds):
        return {"finished": f"2026-11-23T{finished}+00:00", "seconds": seconds, "side_by_side": 2, "table": "fashion"}

    path = tmp_path / "times.json"
    path.write_text(
        json.dumps(
            {
                "machine": "test",
                "stages": {
                    "fashion_cnn@3": rec("10:10:00", 600.0),
                    "fashion_cnn@4": rec("10:10:00", 580.0),
                    "fashion_cv@dense64-9-0": rec("10:11:00", 60.0),
                    "fashion_table": rec("10:11:30", 20.0),
                },
            }
        )
    )
    extra = records_summary(path)
    assert extra["seeds"] == [3, 4, 9] and extra["stages"] == 4 and extra["stage_seconds"] == 1260.0
    assert extra["busy_seconds"] == 600.0 + 60.0 + 20.0  # the CNNs side by side, then the fold, then the table
    assert extra["kinds"]["fashion_cnn"] == {
        "stages": 2,
        "seconds": 1180.0,
        "median_s": 590.0,
        "min_s": 580.0,
        "max_s": 600.0,
    }
    text = render({"machine": "test", "extra_seeds": extra})
    assert "## The extra seeds (3-9) of the ten-seed run" in text
    assert "4 stages, 21 min 00 s summed, 11 min 20 s with at least one stage running" in text
    assert "| fashion_cnn | 2 | 590 s | 580 s | 600 s | 19 min 40 s |" in text


def test_dvc_output_lines_are_recognised():
    assert RUNNING.match("Running stage 'fashion_cv@dense64-0-1':").group(1) == "fashion_cv@dense64-0-1"
    assert SKIPPED.match("Stage 'fetch@mnist' didn't change, skipping").group(1) == "fetch@mnist"
    log = "Running stage 'noise@0':\n> python -m stages.noise\nUpdating lock file 'dvc.lock'\nRunning stage 'report':\n"
    assert ran_stages(log) == ["noise@0", "report"] and ran_stages("Stage 'report' didn't change, skipping") == []


def test_a_stage_runs_for_real_with_its_outputs_in_a_scratch_folder(tmp_path, monkeypatch):
    from types import SimpleNamespace

    import benchmarks.measure as measure

    outs = [SimpleNamespace(def_path="reports/fashion/table.md"), SimpleNamespace(def_path="reports/fashion/figures")]
    stage = SimpleNamespace(
        outs=outs,
        cmd="python -m stages.fashion_table --runs reports/runs/fashion "
        "--table reports/fashion/table.md --figures reports/fashion/figures",
    )
    monkeypatch.setattr(measure, "pipeline", lambda: {"fashion_table": stage})
    command = measure.scratch_command("fashion_table", tmp_path)
    assert command[1:] == [
        "-m",
        "stages.fashion_table",
        "--runs",
        "reports/runs/fashion",
        "--table",
        str(tmp_path / "reports/fashion/table.md"),
        "--figures",
        str(tmp_path / "reports/fashion/figures"),
    ]
    assert (tmp_path / "reports/fashion").is_dir()


def test_report_shows_side_by_side_units_and_flags_changed_results():
    units = {
        "fashion_dense64": {
            "one_after_the_other_s": 56.2,
            "side_by_side_s": 42.5,
            "speedup": 1.32,
            "identical_results": True,
            "units": ["stages.fashion_cv --variant dense64 --seed 0"],
        },
        "mnist_3x689": {
            "one_after_the_other_s": 60.0,
            "side_by_side_s": 50.0,
            "speedup": 1.2,
            "identical_results": False,
            "units": ["mnist_tips@crossentropy_sigmoid-0"],
        },
    }
    text = render({"machine": "test", "units": units})
    assert "| fashion_dense64 | stages.fashion_cv --variant dense64 --seed 0 | 56.2 s | 42.5 s | 1.32x | yes |" in text
    assert "| 1.2x | NO |" in text


def test_report_adds_up_the_parallel_runners_cost_per_stage():
    scheduler = {
        "cluster_start_s": 2.5,
        "task_round_trip_ms": 12.0,
        "stages": 168,
        "single_item_up_to_date": {"median_s": 3.988},
        "run_with_nothing_to_do": {"median_s": 9.1},
    }
    text = render({"machine": "test", "scheduler": scheduler})
    # 0.012 s + 3.988 s = 4.0 s a stage; 168 stages on 2 workers: 4.0 * 168 / 2 = 336 s = 5.6 min
    assert "each stage costs about 4.0 s on top of its own work, 5.6 min for all 168 stages on 2 workers" in text
    assert "round trip takes 12.0 ms" in text
    assert "nothing to do (cluster start, `dvc dag`, `dvc status`) took 9.1 s" in text


def test_goal_two_says_when_stage_times_were_shared():
    tables = {
        "fashion": {"stages": 2, "seconds": 3000.0, "slowest": ("fashion_cv@dense64-0-0", 2000.0), "side_by_side": 1}
    }
    data = {
        "stage_times": {"tables": tables, "stage_names": ["fashion_cv@dense64-0-0", "fashion_table"]},
        "training_units": ["fashion_cv@dense64-0-0"],
    }
    row = next(line for line in goals(data) if "full reproduction" in line)
    assert "50 min 00 s" in row and "1 stages of it timed side by side" in row and "| met |" in row


def test_epoch_timer_splits_training_from_the_validation_pass():
    import keras
    import numpy as np

    x = np.random.default_rng(0).random((256, 8), dtype=np.float32)
    y = (x.sum(axis=1) > 4).astype("int32")
    model = keras.Sequential([keras.Input((8,)), keras.layers.Dense(2, activation="softmax")])
    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy")
    with_validation, without = EpochTimer(), EpochTimer()
    model.fit(x, y, epochs=2, batch_size=32, validation_data=(x, y), verbose=0, callbacks=[with_validation])
    model.fit(x, y, epochs=2, batch_size=32, verbose=0, callbacks=[without])
    keras.backend.clear_session()
    assert len(with_validation.train_seconds) == len(with_validation.seconds) == 2
    assert all(0 < t < s for t, s in zip(with_validation.train_seconds, with_validation.seconds))
    assert without.train_seconds == without.seconds


@pytest.mark.parametrize("seconds, text", [(1919.6, "32 min 00 s"), (59.4, "0 min 59 s"), (3600, "60 min 00 s")])
def test_minutes_never_show_60_seconds(seconds, text):
    assert minutes(seconds) == text


def test_busy_wall_is_the_union_of_the_stages_intervals():
    from benchmarks.measure import busy_wall

    def rec(finished, seconds):
        return {"finished": f"2026-11-23T{finished}+00:00", "seconds": seconds}

    # two side by side (10:00:00-10:01:40 and 10:00:20-10:01:30), one more after a gap of a
    # day (a resumed run), one inside another: 100 s + 60 s, the gap not counted
    records = {"a": rec("10:01:40", 100), "b": rec("10:01:30", 70), "c": rec("10:00:50", 10)}
    records["d"] = {"finished": "2026-11-24T09:01:00+00:00", "seconds": 60}
    result = busy_wall(records)
    assert result["busy_seconds"] == 160.0 and result["stage_seconds"] == 240.0 and result["stages"] == 4
    assert busy_wall({})["busy_seconds"] == 0


def test_goal_one_compares_the_parallel_run_with_the_sequential_sum():
    tables = {
        "fashion": {"stages": 2, "seconds": 3000.0, "slowest": ("fashion_cv@dense64-0-0", 2000.0), "side_by_side": 0}
    }
    parallel = {
        "busy_seconds": 2000.0,
        "stages": 3,
        "workers": [2],
        "stage_names": ["fashion_cv@dense64-0-0", "fashion_table", "report"],
    }
    data = {
        "stage_times": {"tables": tables, "stage_names": ["fashion_cv@dense64-0-0", "fashion_table"]},
        "training_units": ["fashion_cv@dense64-0-0"],
        "parallel_run": parallel,
    }
    row = next(line for line in goals(data) if "run_parallel --workers 2" in line)
    assert "33 min 20 s with stages running (3 stages" in row and "1.50x" in row and "| met |" in row
    assert "lacks 1 of these stages" in row
    data["parallel_run"] = {**parallel, "busy_seconds": 2400.0}
    row = next(line for line in goals(data) if "run_parallel" in line)
    assert "1.25x" in row and "| missed |" in row


def test_the_quick_look_is_reported_with_its_time_and_what_ran():
    quick = {"wall_s": 236.4, "project_s": 3.1, "stages_run": 33, "report_written": True, "mirror": "DATASET_MIRROR"}
    text = render({"machine": "test", "quick": quick})
    assert (
        "datasets from DATASET_MIRROR): 3 min 56 s end to end (3.1 s to make the project), 33 stages ran, "
        "report written."
    ) in text


def test_the_test_suite_is_reported_with_its_time_and_pytests_summary():
    suite = {
        "commit": "0123456789abcdef",
        "wall_s": 706.0,
        "summary": "210 passed in 705.98s (0:11:45)",
        "passed": 210,
        "workers": 2,
    }
    text = render({"machine": "test", "tests": suite})
    assert (
        "`python -m pytest` on a clean clone of `0123456789ab` (2 pytest-xdist workers, as pytest.ini sets): "
        '11 min 46 s end to end; pytest said "210 passed in 705.98s (0:11:45)".'
    ) in text


def test_the_search_goal_adds_the_trials_and_the_reruns_wall_time(tmp_path):
    from benchmarks.measure import search_summary
    from tools.timing import Records

    trials = tmp_path / "trials.json"
    trials.write_text(
        json.dumps(
            {"trials": [{"state": "complete", "seconds": 300.0}, {"state": "pruned", "seconds": 100.0}], "top": [0]}
        )
    )
    times = Records(tmp_path / "times.json")
    for stage, seconds in (("search_cv@top1-0", 500.0), ("search_cv@top1-1", 520.0), ("search_final@0", 90.0)):
        times.add(stage, seconds, side_by_side=2)
    times.add_run(started="then", wall_seconds=600.0, exit_code=0, workers=2)
    times.add_run(started="later", wall_seconds=400.0, exit_code=0, workers=2)
    found = search_summary(trials, tmp_path / "no-study.journal", times.path)
    assert found["search_cv"] == {"stages": 2, "median_s": 510.0} and found["search_final"]["stages"] == 1
    assert found["reruns_wall_s"] == 1000.0 and (found["trials"], found["pruned"]) == (2, 1)
    assert found["reruns_runs"] == 2
    row = next(line for line in goals({"search": {**found, "wall_s": 3000.0}}) if "the search, its top" in line)
    assert "66 min 40 s: the trials 50 min 00 s, the re-runs and the final models 16 min 40 s | met |" in row
    committed = json.loads(Path("reports/benchmarks.json").read_text())
    text = render({**committed, "search": {**found, "wall_s": 3000.0}})
    assert "2 re-runs of its best trials on every seed, 510 s each (median)" in text
    assert "16 min 40 s of wall time over 2 runs of `tools.run_parallel`" in text
    row = next(line for line in goals({"search": {"wall_s": 3000.0}}) if "the search, its top" in line)
    assert "the re-runs and the final models: not all run yet | open |" in row
