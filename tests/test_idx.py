"""The IDX reader/verifier on tiny hand-made files."""

import gzip
import hashlib

import numpy as np
import pytest

from lib.common.core import DataError
from lib.data.idx import expected_ndim, inspect_idx_gz, read_idx_gz, verify_idx_gz
from tests.conftest import idx_bytes, write_idx_gz


def test_round_trip_gives_shape_checksum_and_values(tmp_path):
    images = np.arange(3 * 28 * 28, dtype=np.uint32).reshape(3, 28, 28).astype(np.uint8)
    path = tmp_path / "train-images-idx3-ubyte.gz"
    sha = write_idx_gz(path, images)
    info = inspect_idx_gz(path)
    assert info.shape == (3, 28, 28)
    assert info.sha256 == sha == hashlib.sha256(idx_bytes(images)).hexdigest()
    loaded = read_idx_gz(path, sha)
    assert loaded.dtype == np.uint8
    np.testing.assert_array_equal(loaded, images)


def test_checksum_is_of_decompressed_content(tmp_path):
    labels = np.array([5, 0, 4, 1, 9], dtype=np.uint8)
    fast, small = tmp_path / "a" / "train-labels-idx1-ubyte.gz", tmp_path / "b" / "train-labels-idx1-ubyte.gz"
    sha = write_idx_gz(fast, labels, compresslevel=1)
    assert write_idx_gz(small, labels, compresslevel=9) == sha
    assert verify_idx_gz(fast, sha).sha256 == verify_idx_gz(small, sha).sha256


def test_recompressed_copy_is_canonical(tmp_path):
    labels = np.arange(200, dtype=np.uint8)
    copies = []
    for level in (1, 9):
        src = tmp_path / f"src{level}" / "train-labels-idx1-ubyte.gz"
        sha = write_idx_gz(src, labels, compresslevel=level)
        out = tmp_path / f"out{level}.gz"
        verify_idx_gz(src, sha, recompress_to=out)
        copies.append(out.read_bytes())
    assert copies[0] == copies[1]
    assert gzip.decompress(copies[0]) == idx_bytes(labels)


@pytest.mark.parametrize("name, ndim", [("train-images-idx3-ubyte.gz", 3), ("t10k-labels-idx1-ubyte.gz", 1)])
def test_expected_ndim_from_name(name, ndim):
    assert expected_ndim(name) == ndim


def test_bad_files_are_named_in_the_error(tmp_path):
    path = tmp_path / "train-labels-idx1-ubyte.gz"
    raw = idx_bytes(np.zeros(10, dtype=np.uint8))
    cases = {
        "not a gzip file": b"plain bytes, no gzip header",
        "truncated gzip stream": gzip.compress(raw)[:-12],
        "wrong IDX magic number 0x00000803, expected 0x00000801": gzip.compress(
            idx_bytes(np.zeros((2, 2, 2), dtype=np.uint8))
        ),
        "IDX header promises shape (10,)": gzip.compress(raw[:-3]),
    }
    for expected, content in cases.items():
        path.write_bytes(content)
        with pytest.raises(DataError, match=r"train-labels-idx1-ubyte\.gz") as err:
            inspect_idx_gz(path)
        assert expected in str(err.value)


def test_checksum_mismatch_gives_both_values(tmp_path):
    path = tmp_path / "t10k-labels-idx1-ubyte.gz"
    sha = write_idx_gz(path, np.ones(4, dtype=np.uint8))
    with pytest.raises(DataError) as err:
        verify_idx_gz(path, "0" * 64)
    assert sha in str(err.value) and "0" * 64 in str(err.value)
