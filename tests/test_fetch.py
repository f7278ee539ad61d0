"""The fetch stage through its real entry point, on tiny mirrors the tests write: a local
directory, and an HTTP server on 127.0.0.1. Every failure must name the file, the source and
what was expected, and leave nothing behind."""

import gzip
import shutil
import socket
import subprocess
import sys
import time

import numpy as np
import pytest

from lib.common.core import ConfigError, DataError
from lib.data.idx import read_idx_gz
from stages import fetch
from tests.conftest import FILE_NAMES, ROOT, tiny_arrays, write_mirror, write_params

pytestmark = pytest.mark.usefixtures("no_env_mirror")


def run_fetch(params, out):
    fetch.main(["--stage", "fetch@tiny", "--out", str(out), "--params", str(params)])


def assert_nothing_written(out):
    """Neither the output nor any temporary sibling of it may survive a failed fetch."""
    assert not out.exists()
    assert list(out.parent.iterdir()) == []


def test_fetch_from_local_mirror(tmp_path):
    dataset = write_mirror(tmp_path / "mirror")
    params = write_params(tmp_path / "params.yaml", dataset, [str(tmp_path / "mirror")])
    out = tmp_path / "raw" / "tiny"
    run_fetch(params, out)
    assert sorted(p.name for p in out.iterdir()) == sorted(FILE_NAMES.values())
    arrays = tiny_arrays()
    for role, spec in dataset["files"].items():
        np.testing.assert_array_equal(read_idx_gz(out / spec["name"], spec["sha256"]), arrays[role])


def test_fetched_bytes_do_not_depend_on_the_mirror(tmp_path):
    """Mirrors compress differently; the fetched files are the same bytes anyway (stable dvc.lock)."""
    outs = []
    for level in (1, 9):
        dataset = write_mirror(tmp_path / f"mirror{level}", compresslevel=level)
        params = write_params(tmp_path / f"params{level}.yaml", dataset, [str(tmp_path / f"mirror{level}")])
        run_fetch(params, tmp_path / f"raw{level}" / "tiny")
        outs.append({n: (tmp_path / f"raw{level}" / "tiny" / n).read_bytes() for n in FILE_NAMES.values()})
    assert outs[0] == outs[1]


def test_fetch_over_http(tmp_path, http_mirror):
    served, url = http_mirror
    dataset = write_mirror(served)
    params = write_params(tmp_path / "params.yaml", dataset, [url])
    out = tmp_path / "raw" / "tiny"
    run_fetch(params, out)
    spec = dataset["files"]["train_labels"]
    np.testing.assert_array_equal(read_idx_gz(out / spec["name"], spec["sha256"]), tiny_arrays()["train_labels"])


def test_a_bad_source_falls_back_to_the_next(tmp_path, http_mirror):
    served, url = http_mirror
    dataset = write_mirror(served)
    bad = tmp_path / "bad"
    shutil.copytree(served, bad)
    (bad / "tiny" / FILE_NAMES["test_images"]).write_bytes(b"not gzip")
    params = write_params(tmp_path / "params.yaml", dataset, [str(bad), url])
    run_fetch(params, tmp_path / "raw" / "tiny")
    assert (tmp_path / "raw" / "tiny" / FILE_NAMES["test_images"]).is_file()


def test_env_mirror_comes_first(tmp_path, monkeypatch):
    dataset = write_mirror(tmp_path / "mirror")
    params = write_params(tmp_path / "params.yaml", dataset, [str(tmp_path / "missing")])
    monkeypatch.setenv("DATASET_MIRROR", str(tmp_path / "mirror"))
    run_fetch(params, tmp_path / "raw" / "tiny")
    assert len(list((tmp_path / "raw" / "tiny").iterdir())) == 4


def _corrupt(mirror, dataset, case):
    """Damage one file of a tiny mirror the way `case` says; return (file name, expected text)."""
    folder = mirror / dataset["mirror_dir"]
    name = FILE_NAMES["train_labels"]
    path = folder / name
    good = gzip.decompress(path.read_bytes())
    if case == "checksum mismatch":
        path.write_bytes(gzip.compress(good[:-1] + bytes([good[-1] ^ 1])))
        return name, f"expected {dataset['files']['train_labels']['sha256']}"
    if case == "truncated gzip":
        path.write_bytes(path.read_bytes()[:-10])
        return name, "truncated gzip stream"
    if case == "not gzip":
        path.write_bytes(good)
        return name, "not a gzip file"
    if case == "wrong magic":
        path.write_bytes(gzip.compress(b"\x00\x00\x08\x03" + good[4:]))
        return name, "wrong IDX magic number 0x00000803, expected 0x00000801"
    if case == "missing file":
        path.unlink()
        return name, "file not found in this mirror"
    raise AssertionError(case)


@pytest.mark.parametrize("case", ["checksum mismatch", "truncated gzip", "not gzip", "wrong magic", "missing file"])
def test_bad_file_fails_clearly_and_writes_nothing(tmp_path, case):
    mirror = tmp_path / "mirror"
    dataset = write_mirror(mirror)
    name, expected = _corrupt(mirror, dataset, case)
    params = write_params(tmp_path / "params.yaml", dataset, [str(mirror)])
    out = tmp_path / "raw" / "tiny"
    out.parent.mkdir()
    with pytest.raises(DataError) as err:
        run_fetch(params, out)
    message = str(err.value)
    assert name in message and str(mirror / "tiny") in message and expected in message
    assert dataset["files"]["train_labels"]["sha256"] in message  # what was expected
    assert_nothing_written(out)


def test_images_and_labels_of_different_lengths(tmp_path):
    arrays = tiny_arrays()
    arrays["train_labels"] = arrays["train_labels"][:-1]
    mirror = tmp_path / "mirror"
    dataset = write_mirror(mirror, arrays=arrays)  # checksums of the mismatched files themselves
    params = write_params(tmp_path / "params.yaml", dataset, [str(mirror)])
    out = tmp_path / "raw" / "tiny"
    out.parent.mkdir()
    with pytest.raises(DataError) as err:
        run_fetch(params, out)
    message = str(err.value)
    assert "train-images-idx3-ubyte.gz" in message and "train-labels-idx1-ubyte.gz" in message
    assert "30 images" in message and "29 labels" in message and str(mirror / "tiny") in message
    assert_nothing_written(out)


def test_mirror_that_does_not_exist(tmp_path):
    dataset = write_mirror(tmp_path / "elsewhere")
    params = write_params(tmp_path / "params.yaml", dataset, [str(tmp_path / "no-such-mirror")])
    out = tmp_path / "raw" / "tiny"
    out.parent.mkdir()
    with pytest.raises(DataError) as err:
        run_fetch(params, out)
    assert "mirror directory does not exist" in str(err.value)
    assert str(tmp_path / "no-such-mirror" / "tiny") in str(err.value)
    assert_nothing_written(out)


def _closed_port():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_unreachable_url(tmp_path):
    dataset = write_mirror(tmp_path / "elsewhere")
    url = f"http://127.0.0.1:{_closed_port()}"
    params = write_params(tmp_path / "params.yaml", dataset, [url])
    out = tmp_path / "raw" / "tiny"
    out.parent.mkdir()
    with pytest.raises(DataError) as err:
        run_fetch(params, out)
    message = str(err.value)
    assert f"{url}/tiny" in message and "unreachable" in message and "train-images-idx3-ubyte.gz" in message
    assert_nothing_written(out)


def test_http_404_is_reported(tmp_path, http_mirror):
    served, url = http_mirror
    dataset = write_mirror(tmp_path / "elsewhere")  # the server holds nothing
    params = write_params(tmp_path / "params.yaml", dataset, [url])
    out = tmp_path / "raw" / "tiny"
    out.parent.mkdir()
    with pytest.raises(DataError, match="HTTP 404"):
        run_fetch(params, out)
    assert_nothing_written(out)


def test_failed_refetch_keeps_the_previous_output(tmp_path):
    mirror = tmp_path / "mirror"
    dataset = write_mirror(mirror)
    params = write_params(tmp_path / "params.yaml", dataset, [str(mirror)])
    out = tmp_path / "raw" / "tiny"
    run_fetch(params, out)
    before = {p.name: p.read_bytes() for p in out.iterdir()}
    _corrupt(mirror, dataset, "not gzip")
    with pytest.raises(DataError):
        run_fetch(params, out)
    assert {p.name: p.read_bytes() for p in out.iterdir()} == before
    assert [p.name for p in out.parent.iterdir()] == ["tiny"]


def test_command_line_exits_1_with_one_clear_line(tmp_path):
    dataset = write_mirror(tmp_path / "elsewhere")
    params = write_params(tmp_path / "params.yaml", dataset, [str(tmp_path / "nowhere")])
    out = tmp_path / "raw" / "tiny"
    result = subprocess.run(
        [sys.executable, "-m", "stages.fetch", "--stage", "fetch@tiny", "--out", str(out), "--params", str(params)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        env={"PATH": "/usr/bin:/bin"},
    )
    assert result.returncode == 1
    assert result.stderr.startswith("error: tiny/train-images-idx3-ubyte.gz: no source gave a valid copy")
    assert "Traceback" not in result.stderr
    assert not out.exists()


class _SlowServer:
    """An HTTP server on 127.0.0.1 that either trickles a body one byte at a time or never
    answers at all; it counts the requests it got and the bytes it sent."""

    def __init__(self, mode: str, body_size: int = 60, byte_every_s: float = 0.2):
        import http.server
        import threading

        self.requests, self.sent, self.stop = 0, 0, threading.Event()
        outer = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self):
                outer.requests += 1
                if mode == "hang":
                    outer.stop.wait(30)
                    return
                self.send_response(200)
                self.send_header("Content-Length", str(body_size))
                self.end_headers()
                for _ in range(body_size):
                    if outer.stop.is_set():
                        return
                    try:
                        self.wfile.write(b"\0")
                        self.wfile.flush()
                    except OSError:  # the client gave up
                        return
                    outer.sent += 1
                    time.sleep(byte_every_s)

            def log_message(self, *args):
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.stop.set()
        self.server.shutdown()
        self.server.server_close()


def test_a_trickling_server_meets_a_deadline_for_the_whole_file(tmp_path):
    """A server that sends a byte every 0.2 s never trips a per-read timeout; the file's deadline
    (timeout_s in all) gives up on it long before its 60 bytes are through, and says why."""
    dataset = write_mirror(tmp_path / "elsewhere")
    with _SlowServer("trickle") as server:
        params = write_params(tmp_path / "params.yaml", dataset, [server.url])
        params.write_text(params.read_text().replace("timeout_s: 5", "timeout_s: 1"))
        out = tmp_path / "raw" / "tiny"
        out.parent.mkdir()
        with pytest.raises(DataError) as err:
            run_fetch(params, out)
        sent = server.sent
    assert "not finished within 1 s" in str(err.value) and "too slow" in str(err.value)
    assert sent < 20  # it stopped listening after about a second, not at the end of the body
    assert_nothing_written(out)


def test_a_hung_mirror_costs_its_timeout_once_not_once_per_file(tmp_path):
    """A mirror that accepts requests and never answers is asked for the first file only; the
    four files then come from the next source."""
    dataset = write_mirror(tmp_path / "good")
    with _SlowServer("hang") as server:
        params = write_params(tmp_path / "params.yaml", dataset, [server.url, str(tmp_path / "good")])
        params.write_text(params.read_text().replace("timeout_s: 5", "timeout_s: 0.5"))
        out = tmp_path / "raw" / "tiny"
        run_fetch(params, out)
        asked = server.requests
    assert asked == 1
    assert sorted(p.name for p in out.iterdir()) == sorted(FILE_NAMES.values())


def test_a_mirror_path_with_a_space_or_a_tilde_is_one_mirror(tmp_path, monkeypatch):
    """DATASET_MIRROR names one mirror per line: a path with a space is one path (it used to be split
    into two relative ones), and `~` is the home folder."""
    dataset = write_mirror(tmp_path / "my mirrors")
    params = write_params(tmp_path / "params.yaml", dataset, [])
    monkeypatch.setenv("DATASET_MIRROR", str(tmp_path / "my mirrors"))
    run_fetch(params, tmp_path / "raw" / "a")
    assert len(list((tmp_path / "raw" / "a").iterdir())) == 4
    monkeypatch.setenv("HOME", str(tmp_path))
    monkeypatch.setenv("DATASET_MIRROR", f"{tmp_path / 'nowhere'}\n~/my mirrors\n")  # the second line serves
    run_fetch(params, tmp_path / "raw" / "b")
    assert len(list((tmp_path / "raw" / "b").iterdir())) == 4


def test_a_failure_says_which_mirrors_were_named(tmp_path, monkeypatch):
    dataset = write_mirror(tmp_path / "elsewhere")
    dataset["sources"] = [f"http://127.0.0.1:{_closed_port()}"]
    params = write_params(tmp_path / "params.yaml", dataset, [])
    with pytest.raises(DataError) as err:
        run_fetch(params, tmp_path / "raw" / "tiny")
    assert "no mirror was named (DATASET_MIRROR is not set and fetch.mirrors is empty)" in str(err.value)
    monkeypatch.setenv("DATASET_MIRROR", str(tmp_path / "no such folder"))
    with pytest.raises(DataError) as err:
        run_fetch(params, tmp_path / "raw" / "tiny")
    message = str(err.value)
    assert f"mirror directory does not exist ({tmp_path / 'no such folder' / 'tiny'})" in message
    assert f"mirrors named: DATASET_MIRROR ['{tmp_path / 'no such folder'}'] (one per line)" in message


def test_a_wrong_image_count_in_params_is_refused(tmp_path):
    mirror = tmp_path / "mirror"
    dataset = write_mirror(mirror)
    params = write_params(tmp_path / "params.yaml", {**dataset, "train_images": 31}, [str(mirror)])
    out = tmp_path / "raw" / "tiny"
    out.parent.mkdir()
    with pytest.raises(ConfigError, match=r"datasets.tiny.train_images: 31 is not allowed; allowed: 30, the images"):
        run_fetch(params, out)
    assert_nothing_written(out)
