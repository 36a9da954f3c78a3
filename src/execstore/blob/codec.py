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
import zlib
from collections.abc import AsyncGenerator, AsyncIterable, Iterable
from typing import Any, Final

from execstore.blob.base import ArchiveRef
from execstore.blob.compression import (
    CompressionError,
    Decompressor,
    compressor,
    decompressor,
    zstandard_module,
)
from execstore.config import Codec
from execstore.errors import ArchiveCorrupt, ArchiveError

__all__ = [
    "DEFAULT_LEVELS",
    "FORMAT_VERSION",
    "MAX_ARCHIVE_SIZE",
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
MAX_ARCHIVE_SIZE: Final = 2**31 - 1
"""The most bytes one archive holds, raw or stored: pointer rows record sizes as ``integer``."""
DEFAULT_LEVELS: Final = {Codec.GZIP: 6, Codec.ZSTD: 3}

# Serialized records are compressed in batches of about this many characters: large
# enough that per-call overhead vanishes, small enough to keep memory flat.
_RAW_BATCH: Final = 256 * 1024
# Compressed output is handed to the store in pieces of about this size.
_OUT_CHUNK: Final = 1 << 20
# Streaming decode never asks the decompressor for more than this at once, so a
# pathological compression ratio cannot blow up memory.
_DECODE_STEP: Final = 256 * 1024

_JSON: Final = json.JSONEncoder(ensure_ascii=False, separators=(",", ":"), allow_nan=False)


class PayloadFormat(enum.StrEnum):
    """What the decompressed bytes are: many records (NDJSON) or one JSON document."""

    NDJSON = "ndjson"
    JSON = "json"


class ArchiveEncoder:
    """Compresses one payload incrementally and keeps its sha256, sizes and record count.

    Feed it raw payload bytes; it returns compressed bytes as they become available.
    After :meth:`finish` the totals describe exactly the bytes that were handed out.
    A payload growing past ``max_size`` bytes (raw or compressed) raises ArchiveError
    naming ``key``, before the bytes past the limit are handed out.
    """

    def __init__(
        self,
        codec: Codec = Codec.GZIP,
        *,
        payload: PayloadFormat = PayloadFormat.NDJSON,
        level: int | None = None,
        key: str = "",
        max_size: int = MAX_ARCHIVE_SIZE,
    ) -> None:
        self.codec = Codec(codec)
        self.payload = payload
        self.key = key
        self.max_size = max_size
        self.level = DEFAULT_LEVELS[self.codec] if level is None else level
        self._compressor = compressor(self.codec, self.level)
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
        self._check_size(self.raw_size, "raw")
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

    def _check_size(self, size: int, which: str) -> None:
        if size > self.max_size:
            raise ArchiveError(
                f"archive payload is over {self.max_size} bytes {which}: split it", key=self.key
            )

    def _account(self, out: bytes) -> bytes:
        if out:
            self.stored_size += len(out)
            self._check_size(self.stored_size, "compressed")
            self._sha.update(out)
        return out


def serialize(value: Any) -> str:
    """The compact JSON text execstore stores for ``value`` (UTF-8 friendly, no NaN)."""
    return _JSON.encode(value)


async def encode_records(
    records: Iterable[Any] | AsyncIterable[Any], encoder: ArchiveEncoder
) -> AsyncGenerator[bytes, None]:
    """Compressed NDJSON chunks for ``records``, produced one batch at a time."""
    batcher = _RecordBatcher(encoder)
    if isinstance(records, AsyncIterable):
        async for record in records:
            if chunk := batcher.add(record):
                yield chunk
    else:
        for record in records:
            if chunk := batcher.add(record):
                yield chunk
    if tail := batcher.finish():
        yield tail


def encode_document(document: Any, encoder: ArchiveEncoder) -> bytes:
    """The compressed bytes of one JSON document (no trailing newline)."""
    # One C-accelerated dumps is far faster than the pure-Python iterencode, and the
    # document already lives in memory: its text and its compressed form are all we add.
    return encoder.feed(serialize(document).encode("utf-8"), records=1) + encoder.finish()


class _RecordBatcher:
    """Serializes records into ~256 KiB batches and releases compressed ~1 MiB chunks."""

    def __init__(self, encoder: ArchiveEncoder) -> None:
        self._encoder = encoder
        self._batch: list[str] = []
        self._batch_chars = 0
        self._out: list[bytes] = []
        self._out_size = 0

    def add(self, record: Any) -> bytes:
        """A chunk of compressed output when one is ready, else b""."""
        text = serialize(record)
        self._batch.append(text)
        self._batch_chars += len(text) + 1
        if self._batch_chars >= _RAW_BATCH:
            self._collect(self._compress_batch())
            if self._out_size >= _OUT_CHUNK:
                return self._drain()
        return b""

    def finish(self) -> bytes:
        """The remaining compressed output, the codec's trailer included."""
        if self._batch:
            self._collect(self._compress_batch())
        self._collect(self._encoder.finish())
        return self._drain()

    def _compress_batch(self) -> bytes:
        raw = ("\n".join(self._batch) + "\n").encode("utf-8")
        count = len(self._batch)
        self._batch, self._batch_chars = [], 0
        return self._encoder.feed(raw, records=count)

    def _collect(self, data: bytes) -> None:
        if data:
            self._out.append(data)
            self._out_size += len(data)

    def _drain(self) -> bytes:
        data = b"".join(self._out)
        self._out, self._out_size = [], 0
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
            zstd = zstandard_module()
            try:
                raw = zstd.ZstdDecompressor().decompressobj().decompress(stored)
            except zstd.ZstdError as exc:
                raise CompressionError(str(exc)) from exc
    except (zlib.error, CompressionError) as exc:
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
    decoder = decompressor(ref.codec)
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


def _step(ref: ArchiveRef, decoder: Decompressor, data: bytes) -> bytes:
    try:
        return decoder.decompress(data, _DECODE_STEP)
    except CompressionError as exc:
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
