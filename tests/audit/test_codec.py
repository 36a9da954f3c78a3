"""Canonical lines, details codecs and dictionaries (versioned, readable forever)."""

from __future__ import annotations

import datetime as dt
import json
import uuid
from typing import Any

import pytest

from execstore.audit import codec as codec_module
from execstore.audit import train_dictionaries
from execstore.audit.codec import (
    PLAIN,
    ZLIB,
    ZLIB_PLAIN,
    ZSTD,
    ZSTD_PLAIN,
    DetailsCodec,
    build_dictionary,
)
from execstore.audit.format import canonical_details, render_line, split_stored_line, stored_line
from execstore.blob.codec import serialize

from .conftest import access, hot_rows


def _samples(n: int = 300) -> list[bytes]:
    return [
        canonical_details(
            {
                "patientId": f"PAT-{i:05d}",
                "fields": ["dob", "memberId", "diagnosis", "address"],
                "payer": {"name": ["Aetna", "Cigna", "Humana"][i % 3], "plan": f"PPO-{i % 7}"},
                "note": f"eligibility verification for claim CLM-{i * 7919 % 100000:05d}",
            }
        ).encode()
        for i in range(n)
    ]


def test_the_canonical_line_is_what_the_archive_codec_writes() -> None:
    fields = {
        "seq": 3,
        "created_at": "2026-01-02T03:04:05.000006Z",
        "id": str(uuid.uuid4()),
        "organization_id": str(uuid.uuid4()),
        "actor_id": None,
        "action": 'view "quoted" \\ \n\t\u2028 é',
        "resource_type": "claim",
        "resource_id": "\x01ctl",
        "patient_ref": "MRN-1",
        "claim_id": None,
        "job_id": None,
        "purpose": None,
        "source_ip": "::1",
        "user_agent": None,
        "details": canonical_details({"b": [1.5, -0.0, 10**30], "a": {"y": None, "x": "😀"}}),
    }
    line = render_line(**fields)
    as_record = dict(fields, details=json.loads(fields["details"]))
    assert line == serialize(as_record).encode("utf-8")
    digest = bytes(range(32))
    stored = stored_line(line, digest)
    assert json.loads(stored)["link"] == digest[:8].hex()
    assert serialize(json.loads(stored)).encode() == stored
    assert split_stored_line(stored) == (line, digest[:8])


@pytest.mark.parametrize("how", [ZSTD, ZLIB])
def test_dictionaries_compress_and_every_version_stays_readable(how: int) -> None:
    samples = _samples()
    first = build_dictionary(samples[:150], 1, codec=how)
    second = build_dictionary(samples[150:], 2, codec=how)
    assert first is not None
    assert second is not None
    codec = DetailsCodec()
    plain_bytes, plain_how = codec.encode(samples[0].decode(), ZLIB_PLAIN)
    codec.add(first)
    old, old_how = codec.encode(samples[0].decode())
    assert old_how == 1
    codec.add(second)
    new, new_how = codec.encode(samples[1].decode())
    assert new_how == 2
    assert codec.decode(old, 1) == samples[0]
    assert codec.decode(new, 2) == samples[1]
    assert codec.decode(plain_bytes, plain_how) == samples[0]
    assert len(old) < len(plain_bytes) * 0.7  # the dictionary is what makes it small


def test_without_zstandard_new_dictionaries_use_deflate(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(codec_module, "zstd_available", lambda: False)
    codec = DetailsCodec()
    assert codec.current == ZLIB_PLAIN
    built = build_dictionary(_samples(), 1)
    assert built is not None
    assert built.codec == ZLIB
    codec.add(built)
    stored, how = codec.encode(_samples()[0].decode())
    assert how == 1
    assert codec.decode(stored, how) == _samples()[0]
    tiny, tiny_how = codec.encode('{"a":1}')
    assert (tiny, tiny_how) == (b'{"a":1}', PLAIN)


def test_zstd_records_need_zstandard_to_be_read(monkeypatch: pytest.MonkeyPatch) -> None:
    from execstore.errors import ConfigurationError

    stored, how = DetailsCodec().encode(_samples()[0].decode(), ZSTD_PLAIN)
    monkeypatch.setitem(__import__("sys").modules, "zstandard", None)
    with pytest.raises(ConfigurationError, match="execstore\\[zstd\\]"):
        DetailsCodec().decode(stored, how)


async def test_training_switches_new_records_to_the_dictionary(store: Any, org: uuid.UUID) -> None:
    async with store.unit(org) as uow:
        await uow.audit.record(access(0))  # claims the day's checkpoint; too few to train
        await uow.audit.record_many([access(i) for i in range(1, 250)])
    report = await train_dictionaries(store.sessions, organization_id=org)
    assert [(d["organization_id"], d["version"]) for d in report.details["dictionaries"]] == [
        (org, 1)
    ]
    again = await train_dictionaries(store.sessions, organization_id=org)
    assert again.details["dictionaries"] == []  # fresh: not retrained
    async with store.unit(org) as uow:
        await uow.audit.record(access(999, details={"note": "after training " * 8}))
        page = await uow.audit.query(cursor=(await uow.audit.query(limit=250)).next_cursor)
    rows = await hot_rows(store, org)
    assert {r.dictionary for r in rows[:250]} <= {ZSTD_PLAIN, PLAIN}
    other = uuid.uuid4()
    async with store.unit(other) as uow:  # the write that claims a checkpoint also trains
        await uow.audit.record_many([access(i) for i in range(250)])
        await uow.audit.record(access(250))
    assert (await hot_rows(store, other))[-1].dictionary == 1
    assert rows[-1].dictionary == 1
    assert page.items[0].details == {"note": "after training " * 8}
    assert json.loads(canonical_details(page.items[0].details) or "null") == page.items[0].details
    assert dt.datetime.now(dt.UTC) >= page.items[0].created_at
