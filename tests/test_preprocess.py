"""The preprocess stage: pure transformations on tiny arrays, and its entry point on a tiny
fetched dataset (including a raw file changed after the fetch)."""

import gzip

import numpy as np
import pytest
import yaml

from lib.common.core import ConfigError, DataError, build_config
from lib.data.configs import PreprocessConfig
from stages import fetch, noise, preprocess
from stages.noise import add_test_noise
from stages.preprocess import encode_labels, transform_images
from tests.conftest import FILE_NAMES, tiny_arrays, write_mirror, write_params

pytestmark = pytest.mark.usefixtures("no_env_mirror")


def config(**overrides):
    return build_config(PreprocessConfig, {"dataset": "tiny", **overrides}, "preprocess.test")


def test_scaling_and_shapes():
    images = np.array([[[0, 255], [51, 102]]], dtype=np.uint8)
    scaled = transform_images(images, config(scale=True))
    assert scaled.dtype == np.float32 and scaled.shape == (1, 2, 2)
    np.testing.assert_allclose(scaled[0], [[0.0, 1.0], [0.2, 0.4]], rtol=1e-6)
    raw = transform_images(images, config(scale=False))
    np.testing.assert_array_equal(raw[0], [[0.0, 255.0], [51.0, 102.0]])
    assert transform_images(images, config(flatten=True)).shape == (1, 4)
    assert transform_images(images, config(channel_axis=True)).shape == (1, 2, 2, 1)


def test_label_encodings():
    labels = np.array([3, 0, 9], dtype=np.uint8)
    one_hot = encode_labels(labels, config(labels="one_hot"))
    assert one_hot.shape == (3, 10) and one_hot.dtype == np.float32
    assert one_hot.sum(axis=1).tolist() == [1, 1, 1] and one_hot.argmax(axis=1).tolist() == [3, 0, 9]
    integer = encode_labels(labels, config(labels="integer"))
    assert integer.tolist() == [3, 0, 9] and integer.dtype == np.int64
    with pytest.raises(DataError, match="label 12"):
        encode_labels(np.array([12], dtype=np.uint8), config())


def test_noise_has_the_posts_distribution_and_is_seeded():
    x = np.full((200, 784), 0.25, dtype=np.float32)
    noisy = add_test_noise(x, 1.0, seed=7)
    assert noisy.dtype == np.float32 and noisy.shape == x.shape
    assert abs(float(noisy.mean()) - 0.25) < 0.01  # mean = the pixel value
    assert abs(float((noisy - x).std()) - 1.0) < 0.01  # std = 1
    np.testing.assert_array_equal(noisy, add_test_noise(x, 1.0, seed=7))  # a seed, a draw
    assert not np.array_equal(noisy, add_test_noise(x, 1.0, seed=8))  # another seed, another draw
    half = add_test_noise(x, 0.5, seed=7)
    np.testing.assert_allclose(half - x, (noisy - x) / 2, atol=1e-6)  # std scales the same draw
    assert add_test_noise(x, 0.0, seed=7) is x  # std 0: no noise


def test_subset_is_the_first_n_in_order():
    raw = tiny_arrays(n_train=30)
    out = preprocess.preprocess(raw, config(train_limit=12, scale=False))
    np.testing.assert_array_equal(out["x_train"], raw["train_images"][:12].astype(np.float32))
    np.testing.assert_array_equal(out["y_train"], raw["train_labels"][:12])
    assert len(out["x_test"]) == 10  # the test set is never cut
    with pytest.raises(ConfigError, match="train_limit: 31"):
        preprocess.preprocess(raw, config(train_limit=31))


@pytest.mark.parametrize(
    "overrides, key",
    [
        ({"labels": "onehot"}, "labels"),
        ({"train_limit": 0}, "train_limit"),
        ({"scale": "yes"}, "scale"),
        ({"colour": True}, "colour"),
    ],
)
def test_bad_settings_name_the_key(overrides, key):
    with pytest.raises(ConfigError, match=f"preprocess.test.*{key}"):
        config(**overrides)


@pytest.fixture
def fetched(tmp_path):
    dataset = write_mirror(tmp_path / "mirror")
    variants = {"small": {"dataset": "tiny", "train_limit": 5, "labels": "one_hot", "flatten": True}}
    params = write_params(tmp_path / "params.yaml", dataset, [str(tmp_path / "mirror")], variants)
    raw = tmp_path / "data" / "raw" / "tiny"
    fetch.main(["--stage", "fetch@tiny", "--out", str(raw), "--params", str(params)])
    return params, raw


def run_preprocess(params, raw, out):
    preprocess.main(["--stage", "preprocess@small", "--raw", str(raw), "--out", str(out), "--params", str(params)])


def test_stage_writes_the_arrays(fetched, tmp_path):
    params, raw = fetched
    out = tmp_path / "data" / "prepared" / "small.npz"
    run_preprocess(params, raw, out)
    with np.load(out) as arrays:
        assert sorted(arrays.files) == ["x_test", "x_train", "y_test", "y_train"]
        assert arrays["x_train"].shape == (5, 784) and arrays["y_train"].shape == (5, 10)
        assert arrays["x_test"].shape == (10, 784)
        np.testing.assert_allclose(arrays["x_train"], tiny_arrays()["train_images"][:5].reshape(5, -1) / 255, rtol=1e-6)
    assert sorted(p.name for p in out.parent.iterdir()) == ["small.npz"]


def test_noise_stage_draws_a_test_set_per_seed_and_copies_the_rest(fetched, tmp_path):
    params, raw = fetched
    clean = tmp_path / "data" / "prepared" / "small.npz"
    run_preprocess(params, raw, clean)
    noise_params = tmp_path / "noise.yaml"
    noise_params.write_text(yaml.safe_dump({"mnist_tips": {"noise": {"source": "small", "test_std": 1.0}}}))
    drawn = {}
    for seed in (0, 1):
        out = tmp_path / "data" / "prepared" / f"seed{seed}" / "noisy.npz"
        noise.main(["--stage", f"noise@{seed}", "--data", str(clean), "--out", str(out), "--params", str(noise_params)])
        with np.load(out) as arrays:
            drawn[seed] = {k: arrays[k] for k in arrays.files}
    with np.load(clean) as arrays:
        for seed, noisy in drawn.items():
            assert sorted(noisy) == ["x_test", "x_train", "y_test", "y_train"]
            for key in ("x_train", "y_train", "y_test"):
                np.testing.assert_array_equal(noisy[key], arrays[key])
            np.testing.assert_array_equal(noisy["x_test"], add_test_noise(arrays["x_test"], 1.0, seed))
    assert not np.array_equal(drawn[0]["x_test"], drawn[1]["x_test"])


def test_raw_file_changed_after_fetch_is_caught(fetched, tmp_path):
    params, raw = fetched
    path = raw / FILE_NAMES["test_labels"]
    content = bytearray(gzip.decompress(path.read_bytes()))
    content[-1] ^= 1
    path.write_bytes(gzip.compress(bytes(content)))
    out = tmp_path / "data" / "prepared" / "small.npz"
    with pytest.raises(DataError, match=r"t10k-labels-idx1-ubyte\.gz: SHA-256 of decompressed content"):
        run_preprocess(params, raw, out)
    assert not out.parent.exists() or list(out.parent.iterdir()) == []
