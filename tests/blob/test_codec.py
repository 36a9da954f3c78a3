"""The archive codec: round trips, determinism, standard-tool readability, corruption."""

from __future__ import annotations

import dataclasses
import gzip
import hashlib
import json
import math
import random
import struct
import tracemalloc
import zlib
from collections.abc import AsyncIterator, Iterable
from typing import Any

import pytest
import zstandard
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from execstore.blob import MAX_ARCHIVE_SIZE, ArchiveEncoder, ArchiveRef, PayloadFormat
from execstore.blob.codec import (
    decode_payload,
    encode_document,
    encode_records,
    iter_payload_records,
    verify_stream,
)
from execstore.config import Codec
from execstore.errors import ArchiveCorrupt, ArchiveError

json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**63), max_value=2**63)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=8), children, max_size=4)
    ),
    max_leaves=12,
)


async def encode(records: Iterable[Any], codec: Codec = Codec.GZIP) -> tuple[bytes, ArchiveRef]:
    encoder = ArchiveEncoder(codec)
    stored = b"".join([chunk async for chunk in encode_records(records, encoder)])
    return stored, encoder.ref("logs/test.ndjson")


async def pieces(data: bytes, size: int) -> AsyncIterator[bytes]:
    for start in range(0, len(data), size):
        yield data[start : start + size]


async def decode_streamed(ref: ArchiveRef, stored: bytes, size: int = 1000) -> list[Any]:
    return [record async for record in iter_payload_records(ref, pieces(stored, size))]


@pytest.mark.parametrize("codec", [Codec.GZIP, Codec.ZSTD])
@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(records=st.lists(json_values, max_size=30))
async def test_records_round_trip(codec: Codec, records: list[Any]) -> None:
    stored, ref = await encode(records, codec)
    assert ref.record_count == len(records)
    assert ref.stored_size == len(stored)
    assert ref.sha256 == hashlib.sha256(stored).digest()
    assert await decode_streamed(ref, stored, size=7) == records
    raw = decode_payload(ref, stored)
    assert len(raw) == ref.raw_size
    assert [json.loads(line) for line in raw.splitlines()] == records


@pytest.mark.parametrize("codec", [Codec.GZIP, Codec.ZSTD])
@settings(max_examples=40, deadline=None)
@given(document=json_values)
def test_document_round_trip(codec: Codec, document: Any) -> None:
    encoder = ArchiveEncoder(codec, payload=PayloadFormat.JSON)
    stored = encode_document(document, encoder)
    ref = encoder.ref("results/doc.json")
    assert ref.record_count == 1
    assert json.loads(decode_payload(ref, stored)) == document


async def test_async_and_sync_iterables_give_identical_bytes() -> None:
    records = [{"i": i, "text": "héllo wörld " * (i % 7)} for i in range(5000)]

    async def generate() -> AsyncIterator[dict[str, Any]]:
        for record in records:
            yield record

    from_list, ref_a = await encode(records)
    encoder = ArchiveEncoder()
    from_async = b"".join([chunk async for chunk in encode_records(generate(), encoder)])
    again, ref_b = await encode(records)
    assert from_list == from_async == again  # deterministic: a retried write is a no-op
    assert ref_a == ref_b == dataclasses.replace(encoder.ref(ref_a.key))


async def test_gzip_output_is_a_plain_gzip_file_with_no_timestamp() -> None:
    records = [{"name": "ünïcødé", "n": 1}, {"name": "second", "n": 2}]
    stored, _ = await encode(records)
    assert stored[:2] == b"\x1f\x8b"
    assert stored[4:8] == b"\x00\x00\x00\x00"  # mtime 0
    assert stored[3] == 0  # no FNAME: nothing host-specific in the header
    text = gzip.decompress(stored).decode("utf-8")
    assert text == '{"name":"ünïcødé","n":1}\n{"name":"second","n":2}\n'


async def test_zstd_output_is_a_plain_zstd_frame() -> None:
    stored, _ = await encode([{"a": 1}], Codec.ZSTD)
    reader = zstandard.ZstdDecompressor().stream_reader(stored)
    assert reader.read() == b'{"a":1}\n'


async def test_empty_record_stream() -> None:
    stored, ref = await encode([])
    assert ref.record_count == 0
    assert ref.raw_size == 0
    assert gzip.decompress(stored) == b""
    assert await decode_streamed(ref, stored) == []


def test_nan_is_refused_because_jq_could_not_read_it() -> None:
    encoder = ArchiveEncoder()
    with pytest.raises(ValueError, match="JSON compliant"):
        encode_document({"x": math.nan}, encoder)


@pytest.mark.parametrize("codec", [Codec.GZIP, Codec.ZSTD])
async def test_sha_mismatch_is_corrupt(codec: Codec) -> None:
    stored, ref = await encode([{"i": i} for i in range(100)], codec)
    tampered = bytearray(stored)
    tampered[len(tampered) // 2] ^= 0xFF
    with pytest.raises(ArchiveCorrupt, match="sha256"):
        decode_payload(ref, bytes(tampered))
    with pytest.raises(ArchiveCorrupt):
        await decode_streamed(ref, bytes(tampered))
    with pytest.raises(ArchiveCorrupt, match="sha256"):
        await verify_stream(ref, pieces(bytes(tampered), 100))
    await verify_stream(ref, pieces(stored, 100))  # the intact bytes pass


def _ref_for(stored: bytes, like: ArchiveRef) -> ArchiveRef:
    """A ref whose sha256 matches ``stored``: reaches the decoder's own checks."""
    return dataclasses.replace(
        like, sha256=hashlib.sha256(stored).digest(), stored_size=len(stored)
    )


@pytest.mark.parametrize("codec", [Codec.GZIP, Codec.ZSTD])
async def test_truncated_stream_is_corrupt(codec: Codec) -> None:
    stored, ref = await encode([{"i": i, "pad": "x" * 50} for i in range(2000)], codec)
    truncated = stored[: len(stored) // 2]
    bad = _ref_for(truncated, ref)
    with pytest.raises(ArchiveCorrupt):
        decode_payload(bad, truncated)
    with pytest.raises(ArchiveCorrupt):
        await decode_streamed(bad, truncated)


async def test_garbage_and_bad_json_are_corrupt() -> None:
    _, ref = await encode([{"a": 1}])
    garbage = b"definitely not gzip"
    with pytest.raises(ArchiveCorrupt, match="decompress"):
        decode_payload(_ref_for(garbage, ref), garbage)
    with pytest.raises(ArchiveCorrupt, match="decompress"):
        await decode_streamed(_ref_for(garbage, ref), garbage)
    not_json = gzip.compress(b'{"a":1}\n{oops\n', mtime=0)
    with pytest.raises(ArchiveCorrupt, match="NDJSON"):
        await decode_streamed(_ref_for(not_json, ref), not_json)


async def test_wrong_record_count_is_corrupt() -> None:
    stored, ref = await encode([{"a": 1}, {"a": 2}])
    with pytest.raises(ArchiveCorrupt, match="records"):
        await decode_streamed(dataclasses.replace(ref, record_count=3), stored)


@pytest.mark.parametrize("codec", [Codec.GZIP, Codec.ZSTD])
async def test_streaming_decode_holds_bounded_memory(codec: Codec) -> None:
    """A highly compressible blob is inflated step by step, never all at once."""
    records = [{"i": i, "pad": "0" * 4000} for i in range(10_000)]  # ~40 MB raw
    stored, ref = await encode(records, codec)
    del records
    assert len(stored) < ref.raw_size / 100
    seen = 0
    tracemalloc.start()
    try:
        async for record in iter_payload_records(ref, pieces(stored, 256 * 1024)):
            assert record["i"] == seen
            seen += 1
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert seen == 10_000
    assert peak < 8 * 1024 * 1024, peak  # vs ~40 MB if the payload were inflated whole


_TRAILER_PAYLOADS = {
    "empty": [],
    "one line": [b"hello\n"],
    # Several feeds, incompressible and compressible, past one deflate block.
    "many pieces": [b"a" * 100_000, random.Random(5).randbytes(300_000), "ünïcødé\n".encode()],
}


@pytest.mark.parametrize("pieces", _TRAILER_PAYLOADS.values(), ids=_TRAILER_PAYLOADS.keys())
def test_gzip_trailer_is_the_crc32_and_size_of_the_payload(pieces: list[bytes]) -> None:
    """The last 8 bytes the encoder writes are CRC32 and ISIZE (RFC 1952) of the payload."""
    encoder = ArchiveEncoder()
    stored = b"".join(encoder.feed(piece, records=1) for piece in pieces) + encoder.finish()
    payload = b"".join(pieces)
    crc, isize = struct.unpack("<II", stored[-8:])
    assert crc == zlib.crc32(payload)
    assert isize == len(payload) % 2**32
    assert gzip.decompress(stored) == payload
    # And the reader refuses a blob whose trailer does not match its payload.
    ref = encoder.ref("logs/trailer.ndjson")
    for bad in (struct.pack("<II", crc ^ 1, isize), struct.pack("<II", crc, isize + 1)):
        broken = stored[:-8] + bad
        with pytest.raises(ArchiveCorrupt, match="decompress"):
            decode_payload(_ref_for(broken, ref), broken)


async def test_gzip_trailer_of_encoded_records() -> None:
    records = [{"i": i, "text": "héllo wörld " * (i % 13)} for i in range(3000)]
    stored, _ = await encode(records)
    payload = "".join(
        json.dumps(record, separators=(",", ":"), ensure_ascii=False) + "\n" for record in records
    ).encode()
    assert stored[-8:] == struct.pack("<II", zlib.crc32(payload), len(payload))
    assert gzip.decompress(stored) == payload


def test_a_payload_past_the_size_limit_is_refused_before_its_bytes_leave() -> None:
    """Pointer rows keep sizes as ``integer``: an archive holds at most MAX_ARCHIVE_SIZE
    bytes, raw or compressed; the encoder refuses more, naming the key."""
    assert MAX_ARCHIVE_SIZE == ArchiveEncoder().max_size == 2**31 - 1
    encoder = ArchiveEncoder(key="logs/big.ndjson.gz", max_size=1000)
    encoder.feed(b"x" * 1000, records=1)  # exactly the limit
    with pytest.raises(ArchiveError) as refused:
        encoder.feed(b"x", records=1)
    assert refused.value.key == "logs/big.ndjson.gz"
    # Random bytes do not compress: under the limit raw, over it stored (gzip's framing).
    noise = ArchiveEncoder(key="logs/noise.ndjson.gz", max_size=1000)
    handed_out = noise.feed(random.Random(3).randbytes(990))
    with pytest.raises(ArchiveError, match="compressed"):
        handed_out += noise.finish()
    assert len(handed_out) <= 1000
