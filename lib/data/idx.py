"""Read and verify gzip-compressed IDX files (the MNIST / Fashion-MNIST format).

Shared by the fetch stage (verifying what it downloads) and the preprocess stage
(re-verifying what it reads, so a file changed on disk is never trained on).
"""

from __future__ import annotations

import contextlib
import gzip
import hashlib
import zlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from lib.common.core import DataError

# IDX type codes (third byte of the magic number) we accept: only unsigned bytes occur in
# MNIST-style files, and anything else means we were handed the wrong file.
_UBYTE = 0x08
_CHUNK = 1 << 20


@dataclass(frozen=True)
class IdxInfo:
    shape: tuple[int, ...]
    sha256: str


def expected_ndim(name: str) -> int:
    """Number of dimensions promised by a canonical IDX name (`...-idx3-ubyte.gz` -> 3)."""
    for part in Path(name).name.split("-"):
        if part.startswith("idx") and part[3:].isdigit():
            return int(part[3:])
    raise DataError(f"{name}: not a canonical IDX file name (expected '...-idx<N>-ubyte.gz')")


def _parse_header(head: bytes, name: str, ndim: int) -> tuple[int, ...]:
    want_magic = (_UBYTE << 8) | ndim
    if len(head) < 4:
        raise DataError(f"{name}: file is {len(head)} bytes after decompression, too short for an IDX header")
    magic = int.from_bytes(head[:4], "big")
    if magic != want_magic:
        raise DataError(
            f"{name}: wrong IDX magic number 0x{magic:08x}, expected 0x{want_magic:08x} "
            f"(unsigned bytes, {ndim} dimension{'s' if ndim > 1 else ''})"
        )
    if len(head) < 4 + 4 * ndim:
        raise DataError(f"{name}: IDX header ends before its {ndim} dimension sizes")
    return tuple(int.from_bytes(head[4 + 4 * i : 8 + 4 * i], "big") for i in range(ndim))


def inspect_idx_gz(path: Path, name: str | None = None, recompress_to: Path | None = None) -> IdxInfo:
    """Decompress `path` in a stream, check its IDX structure and return its shape and SHA-256.

    The SHA-256 is of the decompressed content: mirrors gzip the same bytes differently.
    With `recompress_to`, the content is also written there as a canonical gzip stream (no
    name, mtime 0), so the fetched files are byte-identical whichever mirror served them.
    """
    name = name or path.name
    ndim = expected_ndim(name)
    header_len = 4 + 4 * ndim
    digest = hashlib.sha256()
    head = b""
    total = 0
    try:
        with contextlib.ExitStack() as stack:
            stream = stack.enter_context(gzip.open(path, "rb"))
            sink = None
            if recompress_to is not None:
                raw_out = stack.enter_context(open(recompress_to, "wb"))
                sink = stack.enter_context(
                    gzip.GzipFile(filename="", mode="wb", compresslevel=6, fileobj=raw_out, mtime=0)
                )
            while chunk := stream.read(_CHUNK):
                if len(head) < header_len:
                    head += chunk[: header_len - len(head)]
                digest.update(chunk)
                total += len(chunk)
                if sink is not None:
                    sink.write(chunk)
    except FileNotFoundError:
        raise DataError(f"{name}: file not found at {path}") from None
    except gzip.BadGzipFile as exc:
        raise DataError(f"{name}: not a gzip file ({exc})") from None
    except EOFError:
        raise DataError(f"{name}: truncated gzip stream (the download or copy was cut short)") from None
    except zlib.error as exc:
        raise DataError(f"{name}: corrupt gzip data ({exc})") from None
    shape = _parse_header(head, name, ndim)
    want = header_len + int(np.prod(shape, dtype=np.int64))
    if total != want:
        raise DataError(
            f"{name}: IDX header promises shape {shape} ({want} bytes) but the file holds {total} bytes"
        )
    return IdxInfo(shape=shape, sha256=digest.hexdigest())


def verify_idx_gz(
    path: Path, sha256: str, name: str | None = None, recompress_to: Path | None = None
) -> IdxInfo:
    """`inspect_idx_gz`, plus a check of the decompressed content against `sha256`."""
    info = inspect_idx_gz(path, name, recompress_to)
    if info.sha256 != sha256:
        raise DataError(
            f"{name or path.name}: SHA-256 of decompressed content is {info.sha256}, expected {sha256}"
        )
    return info


def read_idx_gz(path: Path, sha256: str) -> np.ndarray:
    """Load a verified IDX file into a uint8 array of the shape its header gives."""
    info = verify_idx_gz(path, sha256, name=str(path))
    with gzip.open(path, "rb") as stream:
        raw = stream.read()
    offset = 4 + 4 * len(info.shape)
    return np.frombuffer(raw, dtype=np.uint8, offset=offset).reshape(info.shape)
