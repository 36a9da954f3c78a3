"""Compression primitives for archives: deterministic gzip, zstd, bounded decompression.

Kept apart from the archive format (:mod:`execstore.blob.codec`) so that module reads as
"records in, verified records out" while this one holds the byte-level details.
"""

from __future__ import annotations

import struct
import zlib
from typing import Any, Final, Protocol

from execstore.config import Codec
from execstore.errors import ConfigurationError

__all__ = [
    "CompressionError",
    "Compressor",
    "Decompressor",
    "compressor",
    "decompressor",
    "zstandard_module",
]

# gzip member header: magic, deflate, no flags, mtime 0, no extra flags, OS "unknown".
# Writing it ourselves (instead of zlib's wbits=31) makes the bytes platform-independent.
_GZIP_HEADER: Final = b"\x1f\x8b\x08\x00\x00\x00\x00\x00\x00\xff"


class Compressor(Protocol):
    """Incremental compression: ``compress`` pieces, then ``flush`` once."""

    def compress(self, data: bytes) -> bytes: ...
    def flush(self) -> bytes: ...


class Decompressor(Protocol):
    """Incremental decompression that never returns much more than ``max_length``."""

    def decompress(self, data: bytes, max_length: int) -> bytes: ...
    def pending(self) -> bool: ...
    def finished(self) -> bool: ...


class _GzipCompressor:
    def __init__(self, level: int) -> None:
        self._deflate = zlib.compressobj(level, zlib.DEFLATED, -zlib.MAX_WBITS)
        self._crc = 0
        self._size = 0
        self._header_sent = False

    def compress(self, data: bytes) -> bytes:
        self._crc = zlib.crc32(data, self._crc)
        self._size += len(data)
        out = self._deflate.compress(data)
        if not self._header_sent:
            self._header_sent = True
            return _GZIP_HEADER + out
        return out

    def flush(self) -> bytes:
        head = b"" if self._header_sent else _GZIP_HEADER
        self._header_sent = True
        trailer = struct.pack("<II", self._crc & 0xFFFFFFFF, self._size & 0xFFFFFFFF)
        return head + self._deflate.flush() + trailer


class CompressionError(Exception):
    """Any codec's decompression failure, so callers need not know each library's type."""


class _GzipDecompressor:
    def __init__(self) -> None:
        self._inflate = zlib.decompressobj(wbits=16 + zlib.MAX_WBITS)

    def decompress(self, data: bytes, max_length: int) -> bytes:
        try:
            return self._inflate.decompress(self._inflate.unconsumed_tail + data, max_length)
        except zlib.error as exc:
            raise CompressionError(str(exc)) from exc

    def pending(self) -> bool:
        return bool(self._inflate.unconsumed_tail)

    def finished(self) -> bool:
        return self._inflate.eof and not self._inflate.unused_data


class _ZstdDecompressor:
    """zstandard has no ``max_length``, so the input is fed in adaptive slices.

    A zstd block inflates to at most 128 KiB and is emitted only once its input is
    complete, so the output of one step is bounded by the blocks a slice can finish.
    Slices start tiny, grow while steps undershoot ``max_length`` (ordinary JSON at
    5-10x soon reaches the cap) and shrink when they overshoot (an RLE block is
    4 bytes for 128 KiB). The bound is practical rather than absolute: a slice at the
    cap that turns into pure RLE can still inflate to more than ``max_length``.
    """

    _MIN_SLICE: Final = 64

    def __init__(self) -> None:
        self._zstd = zstandard_module()
        self._obj = self._zstd.ZstdDecompressor().decompressobj()
        self._input = memoryview(b"")
        self._slice = self._MIN_SLICE

    def decompress(self, data: bytes, max_length: int) -> bytes:
        if data:
            # Callers only pass new data once pending() is False, so nothing is dropped.
            self._input = memoryview(data)
        piece, self._input = self._input[: self._slice], self._input[self._slice :]
        try:
            result: bytes = self._obj.decompress(piece)
        except self._zstd.ZstdError as exc:
            raise CompressionError(str(exc)) from exc
        if len(result) > max_length:
            self._slice = max(self._MIN_SLICE, self._slice // 4)
        elif len(result) < max_length // 4:
            self._slice = min(max_length // 16, self._slice * 2)
        return result

    def pending(self) -> bool:
        return len(self._input) > 0

    def finished(self) -> bool:
        return bool(self._obj.eof) and not self._obj.unused_data


def zstandard_module() -> Any:
    try:
        import zstandard
    except ImportError as exc:  # pragma: no cover - the dev environment has it
        raise ConfigurationError(
            "EXECSTORE_ARCHIVE_CODEC=zstd needs the optional 'zstandard' package "
            "(pip install 'execstore[zstd]')"
        ) from exc
    return zstandard


def compressor(codec: Codec, level: int) -> Compressor:
    if codec is Codec.GZIP:
        return _GzipCompressor(level)
    zstd = zstandard_module()
    compressor: Compressor = zstd.ZstdCompressor(level=level, write_checksum=True).compressobj()
    return compressor


def decompressor(codec: Codec) -> Decompressor:
    return _GzipDecompressor() if codec is Codec.GZIP else _ZstdDecompressor()
