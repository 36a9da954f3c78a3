"""Per-organization catalogs of repeated strings, dictionaries, and the caches in front of them.

An audit row names its action, resource type, purpose, actor and user agent (and, for
legacy records, a source address that is not an IP) by a 4-byte id into
``phi_audit_catalog``: a user agent of 110 characters repeated in every record costs 4
bytes. Entries are immutable and never deleted, so ids are cached in memory for good
(bounded LRU); new entries are only ever inserted by a writer holding the organization's
chain-head lock, so two writers never race to create the same one.
"""

from __future__ import annotations

import enum
import hashlib
import time
import uuid
import weakref
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any, Final

import sqlalchemy as sa
from cachetools import LRUCache
from sqlalchemy.ext.asyncio import AsyncSession

from execstore.audit.codec import DetailsCodec, Dictionary
from execstore.errors import Conflict
from execstore.schema.audit import PhiAuditCatalogEntry, PhiAuditDictionary

__all__ = ["AuditState", "Catalog", "Kind", "checked_dictionary", "digest_of", "state_for"]

_CATALOG: sa.Table = PhiAuditCatalogEntry.__table__  # type: ignore[assignment]
_CACHE_ENTRIES: Final = 200_000
_CODEC_REFRESH_SECONDS: Final = 60.0


class Kind(enum.IntEnum):
    """What a catalog entry is."""

    ACTION = 1
    RESOURCE_TYPE = 2
    PURPOSE = 3
    ACTOR = 4
    USER_AGENT = 6
    IP_TEXT = 7


def digest_of(value: str) -> int:
    """The catalog key of ``value``: the first 8 bytes of its sha256, as a signed bigint."""
    return int.from_bytes(hashlib.sha256(value.encode("utf-8")).digest()[:8], "big", signed=True)


class Catalog:
    """Catalog ids and values, cached; the database is asked only about what is not cached."""

    def __init__(self, max_entries: int = _CACHE_ENTRIES) -> None:
        self._ids: LRUCache[tuple[uuid.UUID, int, str], int] = LRUCache(max_entries)
        self._values: LRUCache[int, str] = LRUCache(max_entries)

    def cached_id(self, org: uuid.UUID, kind: int, value: str) -> int | None:
        """The id of ``value`` if it is cached."""
        return self._ids.get((org, kind, value))

    def remember(self, org: uuid.UUID, entries: dict[tuple[int, str], int]) -> None:
        """Cache committed entries (never call it with ids of an uncommitted transaction)."""
        for (kind, value), entry_id in entries.items():
            self._ids[(org, kind, value)] = entry_id
            self._values[entry_id] = value

    async def ids(
        self, session: AsyncSession, org: uuid.UUID, wanted: Iterable[tuple[int, str]]
    ) -> dict[tuple[int, str], int]:
        """The ids of ``wanted`` (kind, value) pairs, inserting missing entries.

        Call it holding the organization's chain-head lock, inside the transaction that
        uses the ids; :meth:`remember` them after that transaction commits.
        """
        found: dict[tuple[int, str], int] = {}
        missing: dict[tuple[int, int], tuple[int, str]] = {}
        for kind, value in set(wanted):
            cached = self.cached_id(org, kind, value)
            if cached is not None:
                found[(kind, value)] = cached
            else:
                missing[(kind, digest_of(value))] = (kind, value)
        if not missing:
            return found
        rows = await session.execute(
            sa.select(_CATALOG.c.id, _CATALOG.c.kind, _CATALOG.c.digest, _CATALOG.c.value).where(
                _CATALOG.c.organization_id == org,
                _CATALOG.c.digest.in_({digest for _, digest in missing}),
            )
        )
        for entry_id, kind, digest, value in rows:
            key = missing.pop((kind, digest), None)
            if key is None:
                continue
            if value != key[1]:
                raise Conflict(f"audit catalog digest collision for kind {kind}: {value!r}")
            found[key] = entry_id
        for (kind, digest), (_, value) in missing.items():
            entry_id = await session.scalar(
                sa.insert(_CATALOG)
                .values(organization_id=org, kind=kind, digest=digest, value=value)
                .returning(_CATALOG.c.id)
            )
            found[(kind, value)] = int(entry_id)
        return found

    async def values(
        self, session: AsyncSession, org: uuid.UUID, ids: Iterable[int | None]
    ) -> dict[int, str]:
        """The values of catalog ``ids`` of ``org`` (from the cache where possible)."""
        wanted = {i for i in ids if i is not None}
        out = {i: self._values[i] for i in wanted if i in self._values}
        missing = wanted - out.keys()
        if missing:
            rows = await session.execute(
                sa.select(_CATALOG.c.id, _CATALOG.c.kind, _CATALOG.c.value).where(
                    _CATALOG.c.organization_id == org, _CATALOG.c.id.in_(missing)
                )
            )
            for entry_id, kind, value in rows:
                out[entry_id] = value
                self._values[entry_id] = value
                self._ids[(org, kind, value)] = entry_id
        return out

    async def find(
        self, session: AsyncSession, org: uuid.UUID, kind: int, value: str
    ) -> int | None:
        """The id of an existing entry (None if there is none): for queries."""
        cached = self.cached_id(org, kind, value)
        if cached is not None:
            return cached
        entry_id = await session.scalar(
            sa.select(_CATALOG.c.id).where(
                _CATALOG.c.organization_id == org,
                _CATALOG.c.kind == kind,
                _CATALOG.c.digest == digest_of(value),
                _CATALOG.c.value == value,
            )
        )
        if entry_id is not None:
            self.remember(org, {(kind, value): int(entry_id)})
        return None if entry_id is None else int(entry_id)


@dataclass(slots=True)
class _CodecEntry:
    codec: DetailsCodec
    loaded_at: float


@dataclass(slots=True)
class AuditState:
    """What one opened store caches for the audit log: catalog ids, dictionaries."""

    catalog: Catalog = field(default_factory=Catalog)
    _codecs: dict[uuid.UUID, _CodecEntry] = field(default_factory=dict)

    async def codec(
        self, session: AsyncSession, org: uuid.UUID, *, need: Iterable[int] = ()
    ) -> DetailsCodec:
        """``org``'s codec, reloaded when stale or when a needed version is unknown."""
        entry = self._codecs.get(org)
        needed = {v for v in need if v > 0}
        fresh = entry is not None and time.monotonic() - entry.loaded_at < _CODEC_REFRESH_SECONDS
        if entry is not None and fresh and needed <= entry.codec.dictionaries.keys():
            return entry.codec
        codec = entry.codec if entry is not None else DetailsCodec()
        known = set(codec.dictionaries)
        rows = await session.execute(
            sa.select(PhiAuditDictionary).where(
                PhiAuditDictionary.organization_id == org,
                PhiAuditDictionary.version.not_in(known) if known else sa.true(),
            )
        )
        for row in rows.scalars():
            codec.add(
                checked_dictionary(
                    org, row.version, row.codec, row.content, row.sample_count, row.sha256
                )
            )
        self._codecs[org] = _CodecEntry(codec, time.monotonic())
        return codec

    def forget_codec(self, org: uuid.UUID) -> None:
        """Reload ``org``'s dictionaries on next use (after training a new one)."""
        self._codecs.pop(org, None)


def checked_dictionary(
    org: uuid.UUID, version: int, codec: int, content: bytes, sample_count: int, sha256: bytes
) -> Dictionary:
    """A stored dictionary row as a Dictionary (Conflict if its content does not match)."""
    if hashlib.sha256(content).digest() != bytes(sha256):
        raise Conflict(f"audit dictionary {version} of {org} does not match its sha256")
    return Dictionary(int(version), int(codec), bytes(content), int(sample_count))


_STATES: weakref.WeakKeyDictionary[Any, AuditState] = weakref.WeakKeyDictionary()


def state_for(sessions: Any) -> AuditState:
    """The audit caches of the store whose session factory is ``sessions``."""
    state = _STATES.get(sessions)
    if state is None:
        state = _STATES[sessions] = AuditState()
    return state
