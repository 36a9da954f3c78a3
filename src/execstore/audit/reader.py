"""Reading records back: hot rows rendered to canonical lines, archived segments as stored.

Verification, export and queries all read through here, so a hot record is rendered
exactly one way (:meth:`Renderer.lines`). On PostgreSQL hot rows are fetched with the
driver directly (no ORM or type-processing per row: verification reads millions of
them); on SQLite through SQLAlchemy Core.
"""

from __future__ import annotations

import datetime as dt
import ipaddress
import json
import operator
import uuid
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from json.encoder import encode_basestring
from typing import Any, Final

import asyncpg
import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncSession

from execstore.archival.pointers import archive_ref
from execstore.audit.catalog import AuditState
from execstore.audit.codec import DetailsCodec
from execstore.audit.format import format_time, quote
from execstore.audit.types import AuditRecord
from execstore.blob import ArchiveRef
from execstore.errors import DatabaseError
from execstore.schema.audit import PhiAuditArchive, PhiAuditChainHead, PhiAuditLog

__all__ = [
    "HOT_COLUMNS",
    "SEGMENTS",
    "HotRow",
    "Renderer",
    "Segment",
    "archived_end",
    "fetch_hot",
    "fetch_hot_with",
    "hot_record",
    "segment_of",
    "segments",
    "segments_statement",
]

_LOG: sa.Table = PhiAuditLog.__table__  # type: ignore[assignment]
HOT_COLUMNS: Final = (
    "seq",
    "created_at",
    "link",
    "id",
    "actor",
    "action",
    "resource_type",
    "resource_id",
    "patient_ref",
    "claim_id",
    "job_id",
    "purpose",
    "source_ip",
    "ip_text",
    "user_agent",
    "dictionary",
    "details",
)
_PG_SELECT: Final = (
    f"SELECT {', '.join(HOT_COLUMNS)} FROM phi_audit_log "
    "WHERE organization_id = $1 AND seq > $2 AND seq <= $3 ORDER BY seq LIMIT $4"
)
# Verification renders millions of rows: the server sends the time, the ids and the
# address as text, which costs it less than building Python objects costs us. The time
# is exactly what format_time prints, uuids print as str(uuid) does, and inet::text
# always carries the mask (so a changed mask shows; see _quoted_address).
_PG_TEXT: Final = (
    _PG_SELECT.replace(
        "created_at,",
        """to_char(created_at AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"'),""",
        1,
    )
    .replace(" id,", " id::text,", 1)
    .replace("claim_id, job_id,", "claim_id::text, job_id::text,", 1)
    .replace("source_ip,", "source_ip::text,", 1)
)
HotRow = Sequence[Any]
"""A hot row's values in :data:`HOT_COLUMNS` order."""
PAGE: Final = 5000
_CATALOG_COLUMNS: Final = tuple(operator.itemgetter(i) for i in (4, 5, 6, 11, 13, 14))
_ENCODING: Final = operator.itemgetter(15)


async def fetch_hot(
    session: AsyncSession,
    org: uuid.UUID,
    *,
    after: int,
    upto: int = 2**63 - 1,
    limit: int = PAGE,
    filters: Sequence[sa.ColumnElement[bool]] = (),
    as_text: bool = False,
) -> list[HotRow]:
    """Up to ``limit`` hot rows of ``org`` with ``after < seq <= upto``, in seq order.

    With ``as_text`` (PostgreSQL, no filters) ``created_at``, the ids and the address come
    as text (rendering takes either; only verification, which needs nothing else, asks).
    """
    if session.get_bind().dialect.name == "postgresql" and not filters:
        connection = await session.connection()
        raw = await connection.get_raw_connection()
        return await fetch_hot_with(
            raw.driver_connection, org, after=after, upto=upto, limit=limit, as_text=as_text
        )
    stmt = (
        sa.select(*(_LOG.c[name] for name in HOT_COLUMNS))
        .where(_LOG.c.organization_id == org, _LOG.c.seq > after, _LOG.c.seq <= upto, *filters)
        .order_by(_LOG.c.seq)
        .limit(limit)
    )
    return list((await session.execute(stmt)).all())


async def fetch_hot_with(
    driver: Any,
    org: uuid.UUID,
    *,
    after: int,
    upto: int = 2**63 - 1,
    limit: int = PAGE,
    as_text: bool = False,
) -> list[HotRow]:
    """:func:`fetch_hot` on PostgreSQL, on an asyncpg connection (``driver``) directly."""
    try:
        return list(
            await driver.fetch(_PG_TEXT if as_text else _PG_SELECT, org, after, upto, limit)
        )
    except asyncpg.PostgresError as exc:
        # The driver bypasses SQLAlchemy: translate here, as translate_database_errors would.
        raise DatabaseError(str(exc).strip().splitlines()[0]) from exc


def _quoted_address(value: Any) -> str:
    """A stored address as the line quotes it: the address, with a mask only if not a host.

    ``value`` is an ipaddress object (asyncpg), or text with a mask (``inet::text``) or
    without (SQLite): all print the same.
    """
    text = str(value)
    if text.endswith("/32") and ":" not in text:
        # An IPv4 host: PostgreSQL prints the address as Python does (no parsing needed).
        return f'"{text[:-3]}"'
    if "/" in text:
        interface = ipaddress.ip_interface(text)
        host = interface.network.prefixlen == interface.max_prefixlen
        text = str(interface.ip) if host else str(interface)
    return f'"{text}"'


class Renderer:
    """Turns hot rows of one organization into canonical lines (catalog and codec cached)."""

    def __init__(self, state: AuditState, org: uuid.UUID) -> None:
        self.state = state
        self.org = org
        self.org_text = str(org)
        self.quoted: dict[int | None, str] = {None: "null"}
        self.values: dict[int, str] = {}
        self.codec: DetailsCodec | None = None
        self.addresses: dict[Any, str] = {}
        self.decoders: dict[int, Callable[[bytes], bytes]] = {}

    async def load(self, session: AsyncSession, rows: Sequence[HotRow]) -> None:
        """Fetch the catalog values and dictionaries ``rows`` need."""
        wanted = set().union(*(map(column, rows) for column in _CATALOG_COLUMNS))
        wanted.difference_update(self.quoted)
        if wanted:
            found = await self.state.catalog.values(session, self.org, wanted)
            for entry_id, value in found.items():
                self.values[entry_id] = value
                self.quoted[entry_id] = quote(value)
        encodings = set(map(_ENCODING, rows))
        if (
            self.codec is None
            or not {e for e in encodings if e > 0} <= self.codec.dictionaries.keys()
        ):
            self.codec = await self.state.codec(session, self.org, need=encodings)
            self.decoders.clear()

    def preload(self, values: Mapping[int, str], codec: DetailsCodec) -> None:
        """Know catalog ``values`` and ``codec`` already (read with the rows, from one snapshot).

        Rendering then needs no :meth:`load`: a row naming an id or dictionary that is not
        here cannot be rendered.
        """
        for entry_id, value in values.items():
            self.values[entry_id] = value
            self.quoted[entry_id] = quote(value)
        self.codec = codec
        self.decoders.clear()

    def details(self, row: HotRow) -> bytes | None:
        """The canonical JSON bytes of a row's details."""
        assert self.codec is not None
        return self.codec.decode(row[16], row[15])

    def line(self, row: HotRow) -> bytes:
        """The canonical line of ``row`` (raises KeyError if a catalog id is unknown)."""
        out: list[bytes] = []
        self.lines((row,), out)
        return out[0]

    def lines(self, rows: Iterable[HotRow], out: list[bytes]) -> None:
        """Append the canonical line of each of ``rows`` to ``out``, in order.

        It raises at the first row that cannot be rendered (see :meth:`parts`); ``out``
        then holds the lines of the rows before it.
        """
        heads: list[bytes] = []
        details: list[bytes] = []
        try:
            self.parts(rows, heads, details)
        finally:
            out.extend([head + body + b"}" for head, body in zip(heads, details, strict=True)])

    def parts(self, rows: Iterable[HotRow], heads: list[bytes], details: list[bytes]) -> None:
        """Append each row's canonical line in two parts: to ``heads`` everything before
        its details, to ``details`` its details JSON (the line is ``head + details + b"}"``).

        The one way a hot record is rendered. Verification hashes the parts without
        joining them: joining copies a 2 KB line twice, which measured about 1 µs a
        record, as much as rendering it. It raises at the first row that
        cannot be rendered (KeyError for a catalog id or dictionary that is not there, the
        codec's error for details that do not decode); both lists then hold the parts of
        the rows before it. Rows come from :func:`fetch_hot`, with or without ``as_text``.
        """
        assert self.codec is not None
        codec, quoted, addresses, decoders = self.codec, self.quoted, self.addresses, self.decoders
        org, escape = self.org_text, encode_basestring
        add_head, add_details = heads.append, details.append
        for (
            seq,
            at,
            _link,
            record_id,
            actor,
            action,
            resource_type,
            resource_id,
            patient_ref,
            claim_id,
            job_id,
            purpose,
            address,
            address_text,
            user_agent,
            encoding,
            stored,
        ) in rows:
            if address is None:
                source = quoted[address_text]
            else:
                source = addresses.get(address) or addresses.setdefault(
                    address, _quoted_address(address)
                )
            if stored is None:
                body = b"null"
            else:
                decode = decoders.get(encoding)
                if decode is None:
                    decode = decoders[encoding] = codec.decoder(encoding)
                body = decode(stored)
            claim = "null" if claim_id is None else f'"{claim_id}"'
            job = "null" if job_id is None else f'"{job_id}"'
            head = (
                f'{{"seq":{seq},"created_at":"{at if at.__class__ is str else format_time(at)}",'
                f'"id":"{record_id}","organization_id":"{org}","actor_id":{quoted[actor]},'
                f'"action":{quoted[action]},"resource_type":{quoted[resource_type]},'
                f'"resource_id":{"null" if resource_id is None else escape(resource_id)},'
                f'"patient_ref":{"null" if patient_ref is None else escape(patient_ref)},'
                f'"claim_id":{claim},"job_id":{job},'
                f'"purpose":{quoted[purpose]},"source_ip":{source},'
                f'"user_agent":{quoted[user_agent]},"details":'
            )
            add_head(head.encode())
            add_details(body)


def hot_record(renderer: Renderer, row: HotRow) -> AuditRecord:
    """The public record of a hot row."""
    values = renderer.values
    details = renderer.details(row)
    ip = row[12]
    return AuditRecord(
        seq=row[0],
        created_at=row[1],
        id=uuid.UUID(str(row[3])),
        organization_id=renderer.org,
        actor_id=None if row[4] is None else uuid.UUID(values[row[4]]),
        action=values[row[5]],
        resource_type=values[row[6]],
        resource_id=row[7],
        patient_ref=row[8],
        claim_id=None if row[9] is None else uuid.UUID(str(row[9])),
        job_id=None if row[10] is None else uuid.UUID(str(row[10])),
        purpose=None if row[11] is None else values[row[11]],
        source_ip=str(ip) if ip is not None else (None if row[13] is None else values[row[13]]),
        user_agent=None if row[14] is None else values[row[14]],
        details=None if details is None else json.loads(details),
    )


@dataclass(frozen=True, slots=True)
class Segment:
    """An archived segment's pointer row."""

    id: uuid.UUID
    first_seq: int
    last_seq: int
    start_date: dt.datetime
    end_date: dt.datetime
    end_hash: bytes
    ref: ArchiveRef
    lost: bool


_ARCHIVES: sa.Table = PhiAuditArchive.__table__  # type: ignore[assignment]
_SEGMENT_COLUMNS: Final = (
    "id",
    "first_seq",
    "last_seq",
    "start_date",
    "end_date",
    "end_hash",
    "blob_key",
    "codec",
    "sha256",
    "raw_size",
    "stored_size",
    "record_count",
    "format_version",
    "lost",
)


def _aware(value: dt.datetime) -> dt.datetime:
    return value.replace(tzinfo=dt.UTC) if value.tzinfo is None else value


def segments_statement(
    *, since: dt.datetime | None = None, until: dt.datetime | None = None
) -> sa.Select[Any]:
    """The pointer rows of organization ``:org`` holding records after ``:after``, in seq order.

    ``org`` and ``after`` are bind parameters (so verification compiles the statement
    once); rows go to :func:`segment_of`.
    """
    stmt = (
        sa.select(*(_ARCHIVES.c[name] for name in _SEGMENT_COLUMNS))
        .where(
            _ARCHIVES.c.organization_id == sa.bindparam("org"),
            _ARCHIVES.c.last_seq > sa.bindparam("after"),
        )
        .order_by(_ARCHIVES.c.first_seq)
    )
    if since is not None:
        stmt = stmt.where(_ARCHIVES.c.end_date >= since)
    if until is not None:
        stmt = stmt.where(_ARCHIVES.c.start_date < until)
    return stmt


SEGMENTS: Final = segments_statement()
"""Every segment after ``:after`` (what verification reads)."""


def segment_of(row: Any) -> Segment:
    """The Segment of a :func:`segments_statement` row (read by column name: a SQLAlchemy
    row mapping or an asyncpg record)."""
    return Segment(
        id=row["id"],
        first_seq=int(row["first_seq"]),
        last_seq=int(row["last_seq"]),
        start_date=_aware(row["start_date"]),
        end_date=_aware(row["end_date"]),
        end_hash=bytes(row["end_hash"]),
        ref=archive_ref(row),
        lost=bool(row["lost"]),
    )


async def segments(
    session: AsyncSession,
    org: uuid.UUID,
    *,
    after: int = 0,
    since: dt.datetime | None = None,
    until: dt.datetime | None = None,
) -> list[Segment]:
    """``org``'s archived segments holding records after ``after``, in seq order."""
    stmt = segments_statement(since=since, until=until)
    rows = (await session.execute(stmt, {"org": org, "after": after})).mappings()
    return [segment_of(row) for row in rows]


async def archived_end(session: AsyncSession, org: uuid.UUID) -> int:
    """The last seq of ``org`` that is archived (0 if none): hot reads start after it."""
    found = await session.scalar(
        sa.select(PhiAuditChainHead.archived_seq).where(PhiAuditChainHead.organization_id == org)
    )
    return int(found or 0)
