"""The benchmark harness's arithmetic: FLOP counts of the models against hand counts, and which
table a stage's time counts towards."""

import pytest

from benchmarks.reproduce import RUNNING, SKIPPED, table_of
from benchmarks.throughput import dense_probe, forward_flops
from stages.fashion_cnn import build_cnn


def test_dense_forward_flops_are_two_per_multiply_add():
    assert forward_flops(dense_probe([64], (28, 28))) == 2 * (784 * 64 + 64 * 10)
    assert forward_flops(dense_probe([689, 689], (784,))) == 2 * (784 * 689 + 689 * 689 + 689 * 10)


def test_cnn_forward_flops_count_every_output_pixel():
    conv1 = 26 * 26 * 32 * 3 * 3 * 1
    conv2 = 11 * 11 * 64 * 3 * 3 * 32
    conv3 = 3 * 3 * 64 * 3 * 3 * 64
    dense = 576 * 64 + 64 * 10
    assert forward_flops(build_cnn()) == 2 * (conv1 + conv2 + conv3 + dense)


@pytest.mark.parametrize("stage, table", [
    ("mnist_tips@deep_relu-0", "mnist_tips"), ("mnist_tips_table", "mnist_tips"),
    ("fashion_cv@dense64-1-4", "fashion"), ("fashion_cnn@2", "fashion"), ("fashion_table", "fashion"),
    ("fetch@mnist", "data"), ("preprocess@fashion_cnn", "data"), ("report", "report"),
])
def test_stage_times_are_grouped_by_table(stage, table):
    assert table_of(stage) == table


def test_dvc_output_lines_are_recognised():
    assert RUNNING.match("Running stage 'fashion_cv@dense64-0-1':").group(1) == "fashion_cv@dense64-0-1"
    assert SKIPPED.match("Stage 'fetch@mnist' didn't change, skipping").group(1) == "fetch@mnist"
