"""End to end: fetch and preprocess of the real MNIST and Fashion-MNIST through `dvc repro`
in a scratch copy of the project, checked against known facts about the datasets."""

import numpy as np
import pytest

from lib.common.paths import PREPARED, prepared_file
from lib.data.idx import read_idx_gz
from stages.noise import add_test_noise
from tests.conftest import dvc, real_mirror
from tools.timing import ran_stages

MNIST_TRAIN_COUNTS = [5923, 6742, 5958, 6131, 5842, 5421, 5918, 6265, 5851, 5949]


def raw_array(pipeline, dataset, role):
    spec = pipeline["params"]["datasets"][dataset]["files"][role]
    return read_idx_gz(pipeline["path"] / "data" / "raw" / dataset / spec["name"], spec["sha256"])


def prepared(pipeline, variant, seed=0):
    with np.load(prepared_file(variant, seed, pipeline["path"] / PREPARED)) as arrays:
        return {k: arrays[k] for k in arrays.files}


def test_every_stage_ran_then_nothing_reran(real_pipeline):
    stages = (
        ["fetch@mnist", "fetch@fashion_mnist"]
        + [f"preprocess@{v}" for v in real_pipeline["params"]["preprocess"]]
        + [f"noise@{seed}" for seed in real_pipeline["params"]["mnist_tips"]["seeds"]]
    )
    for stage in stages:
        assert f"Running stage '{stage}'" in real_pipeline["first"].stdout
        assert f"Stage '{stage}' didn't change, skipping" in real_pipeline["second"].stdout
    assert "Running stage" not in real_pipeline["second"].stdout
    status = dvc(["status", "preprocess"], real_pipeline["path"])
    assert "up to date" in status.stdout


def test_the_datasets_came_from_the_mirror_each_run_named(real_pipeline, smoke, served_mirror):
    """The scratch project fetched from the mirror folder, the README's quick look (the smoke
    project) from the same files served over HTTP, as on a machine without ../shared."""
    if not served_mirror:
        pytest.skip("no DATASET_MIRROR: both fetched from the public locations")
    folder = real_mirror()
    assert served_mirror.startswith("http://127.0.0.1:") and "://" not in folder
    for run, source in ((real_pipeline["first"], folder), (smoke["first"], served_mirror)):
        log = run.stdout + run.stderr
        for dataset, mirror_dir in (("mnist", "mnist"), ("fashion_mnist", "fashion-mnist")):
            for name in ("train-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz"):
                assert f"{dataset}/{name}: verified from {source}/{mirror_dir}" in log


def test_mnist_facts(real_pipeline):
    train_labels = raw_array(real_pipeline, "mnist", "train_labels")
    test_labels = raw_array(real_pipeline, "mnist", "test_labels")
    assert np.bincount(train_labels, minlength=10).tolist() == MNIST_TRAIN_COUNTS
    assert train_labels[:10].tolist() == [5, 0, 4, 1, 9, 2, 1, 3, 1, 4]
    assert test_labels[:10].tolist() == [7, 2, 1, 0, 4, 1, 4, 9, 5, 9]
    images = raw_array(real_pipeline, "mnist", "train_images")
    assert images.shape == (60000, 28, 28) and images.dtype == np.uint8
    assert raw_array(real_pipeline, "mnist", "test_images").shape == (10000, 28, 28)


def test_fashion_mnist_facts(real_pipeline):
    assert np.bincount(raw_array(real_pipeline, "fashion_mnist", "train_labels")).tolist() == [6000] * 10
    assert np.bincount(raw_array(real_pipeline, "fashion_mnist", "test_labels")).tolist() == [1000] * 10


def test_mnist_tips_variant_is_the_first_10000_scaled(real_pipeline):
    arrays = prepared(real_pipeline, "mnist_tips")
    raw_images = raw_array(real_pipeline, "mnist", "train_images")
    raw_labels = raw_array(real_pipeline, "mnist", "train_labels")
    assert arrays["x_train"].shape == (10000, 784) and arrays["x_train"].dtype == np.float32
    assert arrays["y_train"].shape == (10000, 10) and arrays["x_test"].shape == (10000, 784)
    assert arrays["x_train"].min() == 0.0 and arrays["x_train"].max() == 1.0
    np.testing.assert_array_equal(arrays["x_train"] * 255, raw_images[:10000].reshape(10000, 784).astype(np.float32))
    np.testing.assert_array_equal(arrays["y_train"].argmax(axis=1), raw_labels[:10000])
    assert np.bincount(arrays["y_test"].argmax(axis=1)).sum() == 10000


def test_unscaled_variant_keeps_0_to_255(real_pipeline):
    arrays = prepared(real_pipeline, "mnist_tips_unscaled")
    assert arrays["x_train"].min() == 0.0 and arrays["x_train"].max() == 255.0
    np.testing.assert_array_equal(arrays["x_train"], prepared(real_pipeline, "mnist_tips")["x_train"] * 255)


def test_noisy_test_set_is_a_new_draw_per_seed(real_pipeline):
    clean = prepared(real_pipeline, "mnist_tips")
    seeds = real_pipeline["params"]["mnist_tips"]["seeds"]
    assert len(seeds) >= 2
    draws = []
    for seed in seeds:
        noisy = prepared(real_pipeline, "mnist_tips_noisy", seed)
        noise = noisy["x_test"] - clean["x_test"]
        assert abs(float(noise.mean())) < 0.002  # 7.84 M draws: mean is the clean pixel
        assert abs(float(noise.std()) - 1.0) < 0.002
        np.testing.assert_array_equal(noisy["x_train"], clean["x_train"])
        np.testing.assert_array_equal(noisy["y_test"], clean["y_test"])
        np.testing.assert_array_equal(
            noisy["x_test"], add_test_noise(clean["x_test"], 1.0, seed)
        )  # numpy default_rng(seed)
        draws.append(noise[:100])
    # Independent draws: the noise of two seeds is uncorrelated (7.84e4 values: |r| < 0.02).
    assert abs(float(np.corrcoef(draws[0].ravel(), draws[1].ravel())[0, 1])) < 0.02


@pytest.mark.parametrize("variant, x_shape", [("fashion_dense", (28, 28)), ("fashion_cnn", (28, 28, 1))])
def test_fashion_variants(real_pipeline, variant, x_shape):
    arrays = prepared(real_pipeline, variant)
    assert arrays["x_train"].shape == (60000, *x_shape) and arrays["x_test"].shape == (10000, *x_shape)
    assert arrays["y_train"].dtype == np.int64 and np.bincount(arrays["y_train"]).tolist() == [6000] * 10
    assert 0.0 <= arrays["x_train"].min() and arrays["x_train"].max() == 1.0


def test_the_backend_is_a_param_and_jax_needs_no_tensorflow(smoke, tmp_path):
    """`dvc exp run -S training.backend=jax` retrains every training unit, and nothing before them,
    on Keras's JAX backend with TensorFlow unimportable; the tables and the report name the backend
    the units recorded. The old way, KERAS_BACKEND in the environment, is refused with a message."""
    import json

    from tests.conftest import restore_committed

    project, env = smoke["path"], smoke["env"]
    blocked = tmp_path / "no-tensorflow" / "tensorflow"
    blocked.mkdir(parents=True)
    (blocked / "__init__.py").write_text('raise ImportError("TensorFlow is blocked: no stage may need it on JAX")\n')
    units = [
        line.split()[0]
        for line in dvc(["stage", "list"], project).stdout.splitlines()
        if "@" in line.split()[0] and line.split("@")[0] not in ("fetch", "preprocess", "noise")
    ]
    try:
        out = dvc(
            ["exp", "run", "--name", "on-jax", "-S", "training.backend=jax"],
            project,
            env={**env, "PYTHONPATH": str(blocked.parent)},
        ).stdout
        ran = set(ran_stages(out))
        assert set(units) <= ran and len(units) == 20, out
        assert not {s for s in ran if s.split("@")[0] in ("fetch", "preprocess", "noise")}, out
        configs = list((project / "reports/runs").rglob("config.json"))
        assert configs and {json.loads(p.read_text())["backend"] for p in configs} == {"jax"}
        for table in ("mnist_tips", "fashion"):
            assert "trained with keras 3 on jax." in (project / f"reports/{table}/table.md").read_text().lower()
        assert "trained with Keras 3 on JAX" in (project / "reports/README.md").read_text()
    finally:
        restore_committed(project)
        dvc(["exp", "remove", "--all-commits"], project, check=False)
    before = (project / "reports/runs/mnist_tips/deep_relu/seed0/metrics.json").read_bytes()
    refused = dvc(
        ["repro", "--force", "--single-item", "mnist_tips@deep_relu-0"],
        project,
        env={**env, "KERAS_BACKEND": "jax"},
        check=False,
    )
    assert refused.returncode != 0
    assert "error: KERAS_BACKEND=jax is set, but training.backend is 'tensorflow'" in refused.stdout + refused.stderr
    assert (project / "reports/runs/mnist_tips/deep_relu/seed0/metrics.json").read_bytes() == before
    assert "up to date" in dvc(["status"], project).stdout
