"""Fetch stage: the four IDX files of one dataset into data/raw/<dataset>/, each verified.

Serves both posts (MNIST for the Keras tips table, Fashion-MNIST for the DNN/CNN tables).
Sources are tried in order: the user's mirrors, then the dataset's fixed locations.
"""

from __future__ import annotations

import argparse
import logging
import os
import shutil
import time
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path

from tqdm import tqdm

from lib.common.core import ConfigError, DataError, atomic_path, build_config, load_params, run_stage, select
from lib.common.paths import check_name, raw_folder, stage_key, this_stage
from lib.data.configs import DatasetConfig, FetchConfig, FileSpec, dataset_config
from lib.data.idx import IdxInfo, verify_idx_gz

log = logging.getLogger("stages.fetch")

MIRROR_ENV = "DATASET_MIRROR"


def _is_url(source: str) -> bool:
    return urllib.parse.urlsplit(source).scheme in ("http", "https")


def candidate_sources(config: DatasetConfig, mirrors: list[str]) -> list[str]:
    """User mirrors first (each holds the dataset under `mirror_dir`), then the fixed ones."""
    sources = []
    for mirror in mirrors:
        if urllib.parse.urlsplit(mirror).scheme == "file":
            mirror = urllib.parse.unquote(urllib.parse.urlsplit(mirror).path)
        url = _is_url(mirror)
        sources.append(f"{mirror.rstrip('/')}/{config.mirror_dir}" if url else str(Path(mirror) / config.mirror_dir))
    return sources + list(config.sources)


def env_mirrors() -> list[str]:
    """The mirrors DATASET_MIRROR names: one per line (so a path may hold spaces)."""
    return [line.strip() for line in os.environ.get(MIRROR_ENV, "").splitlines() if line.strip()]


def user_mirrors(config: FetchConfig) -> list[str]:
    """Mirrors named in the environment, then those in params; a folder's `~` expanded."""
    return [m if "://" in m else os.path.expanduser(m) for m in [*env_mirrors(), *config.mirrors]]


def mirrors_said(config: FetchConfig) -> str:
    """Which mirrors were named and where, for a failure's message."""
    named = env_mirrors()
    if not named and not config.mirrors:
        return (f"no mirror was named ({MIRROR_ENV} is not set and fetch.mirrors is empty), so only the public "
                f"locations were tried; set {MIRROR_ENV} to a folder or base URL holding the datasets")
    return (f"mirrors named: {MIRROR_ENV} {named or 'not set'} (one per line), fetch.mirrors {list(config.mirrors)}")


class SourceDown(DataError):
    """A source that gave no answer in time or could not be reached: the other files of the
    dataset are not asked of it (a hung mirror costs its timeout once, not once per file)."""


PROGRESS_EVERY_S = 10  # a line in the log this often while a download is under way
WAIT_S = 30  # the longest wait for a server's next byte, within the file's deadline


def _download(url: str, dest: Path, timeout: float) -> None:
    """Fetch `url` into `dest` within `timeout` seconds in all: the deadline bounds the whole
    file (a server that trickles one byte at a time is given up on), and no wait for the next
    byte lasts longer than WAIT_S (a server that never answers costs that, not the deadline)."""
    request = urllib.request.Request(url, headers={"User-Agent": "keras-tutorial-repro/1"})
    started = time.monotonic()
    received = 0
    try:
        with urllib.request.urlopen(request, timeout=min(timeout, WAIT_S)) as response, open(dest, "wb") as out:
            size = int(response.headers.get("Content-Length") or 0) or None
            noted = started
            # disable=None: a bar on a terminal, nothing in a log file (which gets a line every 10 s).
            with tqdm(total=size, unit="B", unit_scale=True, desc=Path(dest).name, disable=None, leave=False) as bar:
                while chunk := response.read1(1 << 16):  # what has arrived, not a full block
                    out.write(chunk)
                    bar.update(len(chunk))
                    received += len(chunk)
                    now = time.monotonic()
                    if now - started > timeout:
                        raise SourceDown(f"not finished within {timeout:g} s ({received} of {size or '?'} bytes): "
                                         "too slow")
                    if now - noted >= PROGRESS_EVERY_S:
                        log.info(f"{url}: {received} of {size or '?'} bytes after {now - started:.0f} s")
                        noted = now
    except urllib.error.HTTPError as exc:
        raise DataError(f"HTTP {exc.code} {exc.reason}") from None
    except urllib.error.URLError as exc:
        raise SourceDown(f"unreachable ({exc.reason})") from None
    except TimeoutError:
        raise SourceDown(f"no answer within {min(timeout, WAIT_S):g} s") from None
    except OSError as exc:
        raise DataError(f"download failed ({exc})") from None


def _retrieve(source: str, name: str, dest: Path, timeout: float) -> None:
    if _is_url(source):
        _download(f"{source.rstrip('/')}/{name}", dest, timeout)
        return
    folder = Path(source)
    if not folder.is_dir():
        raise DataError(f"mirror directory does not exist ({folder.resolve()})")
    if not (folder / name).is_file():
        raise DataError("file not found in this mirror")
    shutil.copyfile(folder / name, dest)


def fetch_file(spec: FileSpec, sources: list[str], dest: Path, timeout: float, label: str,
               down: dict | None = None, said: str = "") -> tuple[IdxInfo, str]:
    """Try each source in turn; keep the first copy whose structure and checksum are right.
    `down` (source -> why) collects the sources that did not answer, and they are skipped."""
    if not sources:
        raise DataError(f"{label}/{spec.name}: no source to fetch it from (set {MIRROR_ENV} or fetch.mirrors)")
    down = {} if down is None else down
    failures = [f"  - {source}: skipped, {why}" for source, why in down.items() if source in sources]
    scratch = dest.with_name(f".download-{dest.name}")
    for source in sources:
        if source in down:
            continue
        try:
            _retrieve(source, spec.name, scratch, timeout)
            info = verify_idx_gz(scratch, spec.sha256, spec.name, recompress_to=dest)
        except DataError as exc:
            failures.append(f"  - {source}: {str(exc).removeprefix(spec.name + ': ')}")
            log.warning(f"{label}/{spec.name}: {source} failed: {exc}")
            if isinstance(exc, SourceDown):
                down[source] = f"it did not answer for {spec.name} ({exc})"
                log.warning(f"{label}: not asking {source} for the other files")
            dest.unlink(missing_ok=True)
            continue
        finally:
            scratch.unlink(missing_ok=True)
        log.info(f"{label}/{spec.name}: verified from {source} (shape {'x'.join(map(str, info.shape))})")
        return info, source
    raise DataError(
        f"{label}/{spec.name}: no source gave a valid copy "
        f"(expected SHA-256 of decompressed content {spec.sha256}):\n" + "\n".join(failures)
        + (f"\n{said}" if said else "")
    )


def check_pairs(label: str, specs: dict[str, FileSpec], fetched: dict[str, tuple[IdxInfo, str]]) -> None:
    """Images and labels of each split must have the same count, or the split is unusable."""
    for split in ("train", "test"):
        (images, image_src), (labels, label_src) = fetched[f"{split}_images"], fetched[f"{split}_labels"]
        if images.shape[0] != labels.shape[0]:
            raise DataError(
                f"{label}: {specs[f'{split}_images'].name} (from {image_src}) holds {images.shape[0]} images "
                f"but {specs[f'{split}_labels'].name} (from {label_src}) holds {labels.shape[0]} labels; "
                "expected the same count"
            )


def fetch_dataset(label: str, section: dict, fetch_section: dict, out: Path) -> None:
    config, specs = dataset_config(section, f"datasets.{label}")
    fetch_config = build_config(FetchConfig, fetch_section, "fetch")
    sources = candidate_sources(config, user_mirrors(fetch_config))
    with atomic_path(out) as staging:
        staging.mkdir()
        down: dict[str, str] = {}
        fetched = {
            role: fetch_file(spec, sources, staging / spec.name, fetch_config.timeout_s, label, down,
                             mirrors_said(fetch_config))
            for role, spec in specs.items()
        }
        check_pairs(label, specs, fetched)
        found = fetched["train_images"][0].shape[0]
        if found != config.train_images:
            raise ConfigError(f"datasets.{label}.train_images: {config.train_images} is not allowed; "
                              f"allowed: {found}, the images {specs['train_images'].name} holds")


def main(argv: list[str] | None) -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--stage", help="fetch@<key under `datasets`> (default: DVC_STAGE, which dvc sets)")
    parser.add_argument("--out", type=Path, help="directory to create (default: data/raw/<dataset>)")
    parser.add_argument("--params", default=Path("params.yaml"), type=Path)
    args = parser.parse_args(argv)
    args.dataset = check_name(stage_key(this_stage(args.stage), "fetch"), "datasets")
    args.out = args.out or raw_folder(args.dataset)
    section = select(load_params(args.params, "datasets"), args.dataset, "datasets")
    fetch_dataset(args.dataset, section, load_params(args.params, "fetch"), args.out)


if __name__ == "__main__":
    run_stage(main)
