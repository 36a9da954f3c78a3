"""The archive format: plain NDJSON or JSON, gzip- or zstd-compressed, verified by sha256.

There is no envelope: a stored blob is exactly what ``gunzip | jq`` (or ``zstd -d``)
expects. Format version, codec, payload kind and counts travel in the blob's metadata and
in the :class:`~execstore.blob.base.ArchiveRef` that the database keeps.

Encoding streams: records are serialized and compressed batch by batch while the sha256
of the *stored* bytes, the raw and stored sizes and the record count are computed on the
way, so a large export is never held in memory (let alone twice). The gzip output is
deterministic (mtime 0, no file name, fixed OS byte) so a retried write produces the very
same bytes and the create-only put recognises it as a no-op.
"""

from __future__ import annotations

import enum
import hashlib
import json
import struct
import zlib
from collections.abc import AsyncGenerator, AsyncIterable, Iterable
from typing import Any, Final, Protocol

from execstore.blob.base import ArchiveRef
from execstore.config import Codec
from execstore.errors import ArchiveCorrupt, ConfigurationError

__all__ = [
    "DEFAULT_LEVELS",
    "FORMAT_VERSION",
    "ArchiveEncoder",
    "PayloadFormat",
    "decode_payload",
    "encode_document",
    "encode_records",
    "iter_payload_records",
    "serialize",
    "verify_stream",
]

FORMAT_VERSION: Final = 1
DEFAULT_LEVELS: Final = {Codec.GZIP: 6, Codec.ZSTD: 3}

# Serialized records are compressed in batches of about this many characters: large
# enough that per-call overhead vanishes, small enough to keep memory flat.
_RAW_BATCH: Final = 256 * 1024
# Compressed output is handed to the store in pieces of about this size.
_OUT_CHUNK: Final = 1 << 20
# Streaming decode never asks the decompressor for more than this at once, so a
# pathological compression ratio cannot blow up memory.
_DECODE_STEP: Final = 256 * 1024

# gzip member header: magic, deflate, no flags, mtime 0, no extra flags, OS "unknown".
# Writing it ourselves (instead of zlib's wbits=31) makes the bytes platform-independent.
_GZIP_HEADER: Final = b"\x1f\x8b\x08\x00\x00\x00\x00\x00\x00\xff"

_JSON: Final = json.JSONEncoder(ensure_ascii=False, separators=(",", ":"), allow_nan=False)


class PayloadFormat(enum.StrEnum):
    """What the decompressed bytes are: many records (NDJSON) or one JSON document."""

    NDJSON = "ndjson"
    JSON = "json"


class _Compressor(Protocol):
    def compress(self, data: bytes) -> bytes: ...
    def flush(self) -> bytes: ...


class _Decompressor(Protocol):
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


class _DecompressError(Exception):
    """Any codec's decompression failure, so callers need not know each library's type."""


class _GzipDecompressor:
    def __init__(self) -> None:
        self._inflate = zlib.decompressobj(wbits=16 + zlib.MAX_WBITS)

    def decompress(self, data: bytes, max_length: int) -> bytes:
        try:
            return self._inflate.decompress(self._inflate.unconsumed_tail + data, max_length)
        except zlib.error as exc:
            raise _DecompressError(str(exc)) from exc

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
        self._zstd = _zstandard()
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
            raise _DecompressError(str(exc)) from exc
        if len(result) > max_length:
            self._slice = max(self._MIN_SLICE, self._slice // 4)
        elif len(result) < max_length // 4:
            self._slice = min(max_length // 16, self._slice * 2)
        return result

    def pending(self) -> bool:
        return len(self._input) > 0

    def finished(self) -> bool:
        return bool(self._obj.eof) and not self._obj.unused_data


def _zstandard() -> Any:
    try:
        import zstandard
    except ImportError as exc:  # pragma: no cover - the dev environment has it
        raise ConfigurationError(
            "EXECSTORE_ARCHIVE_CODEC=zstd needs the optional 'zstandard' package "
            "(pip install 'execstore[zstd]')"
        ) from exc
    return zstandard


def _compressor(codec: Codec, level: int) -> _Compressor:
    if codec is Codec.GZIP:
        return _GzipCompressor(level)
    zstd = _zstandard()
    compressor: _Compressor = zstd.ZstdCompressor(level=level, write_checksum=True).compressobj()
    return compressor


def _decompressor(codec: Codec) -> _Decompressor:
    return _GzipDecompressor() if codec is Codec.GZIP else _ZstdDecompressor()


class ArchiveEncoder:
    """Compresses one payload incrementally and keeps its sha256, sizes and record count.

    Feed it raw payload bytes; it returns compressed bytes as they become available.
    After :meth:`finish` the totals describe exactly the bytes that were handed out.
    """

    def __init__(
        self,
        codec: Codec = Codec.GZIP,
        *,
        payload: PayloadFormat = PayloadFormat.NDJSON,
        level: int | None = None,
    ) -> None:
        self.codec = Codec(codec)
        self.payload = payload
        self.level = DEFAULT_LEVELS[self.codec] if level is None else level
        self._compressor = _compressor(self.codec, self.level)
        self._sha = hashlib.sha256()
        self.raw_size = 0
        self.stored_size = 0
        self.record_count = 0
        self.finished = False

    def feed(self, raw: bytes, *, records: int = 0) -> bytes:
        """The compressed bytes produced so far for ``raw`` (possibly empty)."""
        if self.finished:
            raise RuntimeError("encoder already finished")
        self.raw_size += len(raw)
        self.record_count += records
        return self._account(self._compressor.compress(raw))

    def finish(self) -> bytes:
        """The final compressed bytes; afterwards sha256 and the sizes are complete."""
        if self.finished:
            raise RuntimeError("encoder already finished")
        self.finished = True
        return self._account(self._compressor.flush())

    @property
    def sha256(self) -> bytes:
        """The digest of every stored byte handed out so far (final after ``finish``)."""
        return self._sha.digest()

    def metadata(self) -> dict[str, str]:
        """Blob metadata describing the payload (read by tools and the reconciler)."""
        return {
            "execstore_format_version": str(FORMAT_VERSION),
            "execstore_codec": self.codec.value,
            "execstore_payload": self.payload.value,
            "execstore_record_count": str(self.record_count),
            "execstore_raw_size": str(self.raw_size),
        }

    def ref(self, key: str) -> ArchiveRef:
        """The ArchiveRef for the finished payload stored at ``key``."""
        if not self.finished:
            raise RuntimeError("encoder not finished")
        return ArchiveRef(
            key=key,
            codec=self.codec,
            sha256=self.sha256,
            raw_size=self.raw_size,
            stored_size=self.stored_size,
            record_count=self.record_count,
            format_version=FORMAT_VERSION,
        )

    def _account(self, out: bytes) -> bytes:
        if out:
            self._sha.update(out)
            self.stored_size += len(out)
        return out


def serialize(value: Any) -> str:
    """The compact JSON text execstore stores for ``value`` (UTF-8 friendly, no NaN)."""
    return _JSON.encode(value)


async def encode_records(
    records: Iterable[Any] | AsyncIterable[Any], encoder: ArchiveEncoder
) -> AsyncGenerator[bytes, None]:
    """Compressed NDJSON chunks for ``records``, produced one batch at a time."""
    out = _ChunkBuffer()
    batch: list[str] = []
    batch_chars = 0

    def flush_batch() -> bytes:
        nonlocal batch, batch_chars
        raw = ("\n".join(batch) + "\n").encode("utf-8")
        count = len(batch)
        batch, batch_chars = [], 0
        return encoder.feed(raw, records=count)

    if isinstance(records, AsyncIterable):
        async for record in records:
            text = serialize(record)
            batch.append(text)
            batch_chars += len(text) + 1
            if batch_chars >= _RAW_BATCH and (chunk := out.add(flush_batch())):
                yield chunk
    else:
        for record in records:
            text = serialize(record)
            batch.append(text)
            batch_chars += len(text) + 1
            if batch_chars >= _RAW_BATCH and (chunk := out.add(flush_batch())):
                yield chunk
    if batch:
        out.add(flush_batch())
    out.add(encoder.finish())
    if tail := out.drain():
        yield tail


def encode_document(document: Any, encoder: ArchiveEncoder) -> Iterable[bytes]:
    """Compressed chunks of one JSON document (no trailing newline)."""
    # One C-accelerated dumps is far faster than the pure-Python iterencode; the
    # document already lives in memory, so one text copy is the honest minimum.
    raw = serialize(document).encode("utf-8")
    out = _ChunkBuffer()
    view = memoryview(raw)
    for start in range(0, len(raw), _RAW_BATCH * 4):
        if chunk := out.add(encoder.feed(bytes(view[start : start + _RAW_BATCH * 4]))):
            yield chunk
    encoder.record_count = 1
    out.add(encoder.finish())
    if tail := out.drain():
        yield tail


class _ChunkBuffer:
    """Collects small compressed pieces and releases them in ~1 MiB chunks."""

    def __init__(self) -> None:
        self._parts: list[bytes] = []
        self._size = 0

    def add(self, data: bytes) -> bytes:
        if data:
            self._parts.append(data)
            self._size += len(data)
        return self.drain() if self._size >= _OUT_CHUNK else b""

    def drain(self) -> bytes:
        data = b"".join(self._parts)
        self._parts, self._size = [], 0
        return data


def _check_stored(ref: ArchiveRef, digest: bytes, size: int) -> None:
    if size != ref.stored_size:
        raise ArchiveCorrupt(ref.key, f"stored size {size} != recorded {ref.stored_size}")
    if digest != ref.sha256:
        raise ArchiveCorrupt(ref.key, f"sha256 {digest.hex()} != recorded {ref.sha256.hex()}")


def decode_payload(ref: ArchiveRef, stored: bytes) -> bytes:
    """The verified, decompressed payload of ``stored``; ArchiveCorrupt if it is not ``ref``."""
    _check_stored(ref, hashlib.sha256(stored).digest(), len(stored))
    try:
        if ref.codec is Codec.GZIP:
            # bufsize = the recorded raw size: one allocation instead of repeated growth.
            raw = zlib.decompress(stored, 16 + zlib.MAX_WBITS, max(ref.raw_size, 1))
        else:
            zstd = _zstandard()
            try:
                raw = zstd.ZstdDecompressor().decompressobj().decompress(stored)
            except zstd.ZstdError as exc:
                raise _DecompressError(str(exc)) from exc
    except (zlib.error, _DecompressError) as exc:
        raise ArchiveCorrupt(ref.key, f"cannot decompress: {exc}") from exc
    if len(raw) != ref.raw_size:
        raise ArchiveCorrupt(ref.key, f"raw size {len(raw)} != recorded {ref.raw_size}")
    return raw


async def verify_stream(ref: ArchiveRef, chunks: AsyncIterable[bytes]) -> None:
    """Return once ``chunks`` hash to ``ref``; raise ArchiveCorrupt otherwise."""
    sha = hashlib.sha256()
    size = 0
    async for chunk in chunks:
        sha.update(chunk)
        size += len(chunk)
    _check_stored(ref, sha.digest(), size)


async def iter_payload_records(
    ref: ArchiveRef, chunks: AsyncIterable[bytes]
) -> AsyncGenerator[Any, None]:
    """Records of an NDJSON archive, decoded as ``chunks`` arrive, in bounded memory.

    Decompression or JSON errors raise ArchiveCorrupt at once; a sha256 or size mismatch
    can only be known at the end, so it is raised after the last record. Callers that
    need all-or-nothing collect the records first (``Archives.read_records`` does).
    """
    sha = hashlib.sha256()
    stored = 0
    raw_size = 0
    count = 0
    pending = bytearray()
    decoder = _decompressor(ref.codec)
    async for chunk in chunks:
        sha.update(chunk)
        stored += len(chunk)
        data = chunk
        while True:
            raw = _step(ref, decoder, data)
            data = b""
            raw_size += len(raw)
            pending += raw
            for record in _complete_lines(ref, pending):
                count += 1
                yield record
            if not decoder.pending():
                break
    if pending.strip():
        # A final line without its newline: not what execstore writes, but valid NDJSON.
        count += 1
        yield _parse_line(ref, bytes(pending))
    finished = decoder.finished()
    _check_stored(ref, sha.digest(), stored)
    if not finished:
        raise ArchiveCorrupt(ref.key, "compressed stream is truncated")
    if raw_size != ref.raw_size:
        raise ArchiveCorrupt(ref.key, f"raw size {raw_size} != recorded {ref.raw_size}")
    if count != ref.record_count:
        raise ArchiveCorrupt(ref.key, f"{count} records != recorded {ref.record_count}")


def _step(ref: ArchiveRef, decoder: _Decompressor, data: bytes) -> bytes:
    try:
        return decoder.decompress(data, _DECODE_STEP)
    except _DecompressError as exc:
        raise ArchiveCorrupt(ref.key, f"cannot decompress: {exc}") from exc


def _complete_lines(ref: ArchiveRef, pending: bytearray) -> Iterable[Any]:
    """Parse and remove every complete line in ``pending`` (the tail stays)."""
    end = pending.rfind(b"\n")
    if end < 0:
        return []
    lines = bytes(pending[:end]).split(b"\n")
    del pending[: end + 1]
    return [_parse_line(ref, line) for line in lines if line]


def _parse_line(ref: ArchiveRef, line: bytes) -> Any:
    try:
        return json.loads(line)
    except ValueError as exc:  # JSONDecodeError and UnicodeDecodeError
        raise ArchiveCorrupt(ref.key, f"invalid NDJSON line: {exc}") from exc
