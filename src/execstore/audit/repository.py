"""``uow.audit``: record PHI accesses (durable on their own), query and export them.

Records are written through their own short transaction, never the unit's: an access
recorded inside a unit that then rolls back stays recorded (losing audit entries on
rollback is why pgaudit refuses to write to tables). What that means:

- ``record`` returns once the record is committed (PostgreSQL), whatever the unit does
  afterwards; a record says an access happened or was attempted, not that the unit's
  own writes committed;
- chain order is the order records were committed, which for records of different
  units is not the order of the units' commits;
- the write needs a second connection from the pool while the unit holds its own: size
  ``EXECSTORE_POOL_SIZE`` for two connections per concurrently auditing unit.

SQLite has one writer for the whole database, so records of different organizations
queue behind each other (the busy timeout applies). If the unit itself has already
written (it then holds that one write lock), waiting would deadlock: the record is kept
in memory and written right after the unit ends (commit or rollback, in its own
transaction), and ``record`` returns a receipt without a ``seq``. Such a record is not
durable until the unit ends: a crash in between loses it. A unit that records before it
writes (or only reads) gets the PostgreSQL behaviour.

There is no update or delete: records leave the database only through archival.
"""

from __future__ import annotations

import datetime as dt
import logging
import uuid
from collections.abc import AsyncIterator, Iterable, Sequence
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from execstore.arguments import checks_arguments
from execstore.audit.catalog import AuditState, Kind, state_for
from execstore.audit.checkpoints import write_checkpoint
from execstore.audit.dictionaries import train_dictionaries
from execstore.audit.format import quote, stored_line
from execstore.audit.reader import (
    Renderer,
    archived_end,
    fetch_hot,
    hot_record,
    segments,
)
from execstore.audit.types import AuditReceipt, AuditRecord, PhiAccess
from execstore.audit.writer import Appended, Pending, append, prepare
from execstore.blob import Archives
from execstore.clock import SYSTEM_CLOCK, Clock
from execstore.errors import InvalidAuditRecord, explain, translate_database_errors
from execstore.pages import DEFAULT_LIMIT, Page, check_limit, decode_cursor, encode_cursor
from execstore.repository import TransactionHooks
from execstore.schema.audit import PhiAuditLog

__all__ = ["AuditRepository"]

log = logging.getLogger("execstore.audit")
_WROTE = "execstore_wrote"
_LOG: sa.Table = PhiAuditLog.__table__  # type: ignore[assignment]
_CURSOR_KIND = "audit"


# Registered on the Engine class at import, before any unit runs: a SQLite connection
# is marked once it has written in its transaction (it then holds the database's one
# write lock), and unmarked when the transaction ends.
@sa.event.listens_for(sa.engine.Engine, "before_cursor_execute")
def _mark_sqlite_write(conn: Any, cursor: Any, statement: str, *args: Any) -> None:
    if conn.dialect.name == "sqlite" and statement.lstrip()[:7].upper().startswith(
        ("INSERT", "UPDATE", "DELETE", "REPLACE")
    ):
        conn.info[_WROTE] = True


@sa.event.listens_for(sa.engine.Engine, "commit")
@sa.event.listens_for(sa.engine.Engine, "rollback")
def _clear_sqlite_write(conn: Any) -> None:
    # Runs on every engine's rollback, also the one that closes a connection a cancelled
    # or failed statement invalidated: touching ``info`` there would raise
    # PendingRollbackError in place of the error that got us here.
    if conn.dialect.name == "sqlite" and not conn.invalidated:
        conn.info.pop(_WROTE, None)


@checks_arguments
class AuditRepository:
    """PHI access records of one organization: append-only, tamper-evident."""

    def __init__(
        self,
        *,
        session: AsyncSession,
        organization_id: uuid.UUID,
        sessions: async_sessionmaker[AsyncSession],
        archives: Archives,
        hooks: TransactionHooks | None = None,
        checkpoint_every: dt.timedelta = dt.timedelta(hours=24),
        clock: Clock = SYSTEM_CLOCK,
    ) -> None:
        self.clock = clock
        """Stamps records without a time of their own and decides when a checkpoint is due."""
        self.session = session
        self.organization_id = organization_id
        self.sessions = sessions
        self.archives = archives
        self.hooks = hooks
        self.checkpoint_every = checkpoint_every
        self.state: AuditState = state_for(sessions)
        self._deferred: list[Pending] = []

    # -- writing -------------------------------------------------------------------

    async def record(self, access: PhiAccess | dict[str, Any]) -> AuditReceipt:
        """Record one PHI access; committed on its own before this returns (see above)."""
        return (await self.record_many([access]))[0]

    async def record_many(
        self, accesses: Iterable[PhiAccess | dict[str, Any]]
    ) -> list[AuditReceipt]:
        """Record several accesses in one transaction, in the order given (all or none).

        Raises InvalidAuditRecord for a record that cannot be stored and NotFound for one
        naming another organization's job or claim; nothing of the batch is written then.
        """
        checked = []
        for index, access in enumerate(accesses):
            try:
                checked.append(
                    access if isinstance(access, PhiAccess) else PhiAccess.model_validate(access)
                )
            except ValueError as exc:  # pydantic's ValidationError among them
                raise InvalidAuditRecord(
                    f"audit record {index}: {explain(exc)} (nothing of the batch was written)"
                ) from exc
        if not checked:
            return []
        async with self.sessions() as session:
            with translate_database_errors():
                codec = await self.state.codec(session, self.organization_id)
        pending = [prepare(access, codec) for access in checked]
        if self._dialect == "sqlite":
            appended = await self._write_sqlite(pending)
        else:
            appended = await self._write(pending)
        if appended is None:
            return [
                AuditReceipt(
                    organization_id=self.organization_id, seq=None, id=p.id, created_at=None
                )
                for p in pending
            ]
        return [
            AuditReceipt(organization_id=self.organization_id, seq=seq, id=p.id, created_at=at)
            for p, seq, at in zip(pending, appended.seqs, appended.times, strict=True)
        ]

    @property
    def _dialect(self) -> str:
        return self.session.get_bind().dialect.name

    async def _write(self, pending: Sequence[Pending]) -> Appended:
        async with self.sessions() as session:
            with translate_database_errors():
                async with session.begin():
                    appended = await append(
                        session,
                        self.organization_id,
                        pending,
                        self.state,
                        checkpoint_every=self.checkpoint_every,
                        clock=self.clock,
                    )
        await self._after_commit(appended)
        return appended

    async def _after_commit(self, appended: Appended) -> None:
        self.state.catalog.remember(self.organization_id, appended.catalog_ids)
        if appended.checkpoint_due and appended.head_at is not None:
            try:
                await write_checkpoint(
                    self.sessions,
                    self.archives,
                    self.organization_id,
                    appended.head_seq,
                    appended.head_hash,
                    appended.head_at,
                    clock=self.clock,
                )
            except Exception:  # the record is committed; `audit checkpoint` retries
                log.warning("audit checkpoint of %s failed", self.organization_id, exc_info=True)
            try:
                # Once a checkpoint interval: a first dictionary, or a fresh one a month on.
                await train_dictionaries(
                    self.sessions, organization_id=self.organization_id, clock=self.clock
                )
            except Exception:  # compression only; the records are committed
                log.warning("audit dictionary training failed", exc_info=True)

    async def _write_sqlite(self, pending: Sequence[Pending]) -> Appended | None:
        if self._deferred or await self._unit_holds_write_lock():
            # Waiting for the lock this very unit holds would deadlock: write after it ends.
            self._defer(pending)
            return None
        return await self._write(pending)

    async def _unit_holds_write_lock(self) -> bool:
        if self.hooks is None or not self.session.in_transaction():
            return False
        connection = await self.session.connection()
        return bool(connection.sync_connection.info.get(_WROTE))  # type: ignore[union-attr]

    def _defer(self, pending: Sequence[Pending]) -> None:
        if not self._deferred and self.hooks is not None:
            self.hooks.on_commit(self._flush_deferred)
            self.hooks.on_rollback(self._flush_deferred)
        self._deferred.extend(pending)

    async def _flush_deferred(self) -> None:
        pending, self._deferred = self._deferred, []
        if not pending:
            return
        try:
            await self._write(pending)
        except Exception:
            log.error(
                "%d audit record(s) of %s could not be written after their unit ended: %s",
                len(pending),
                self.organization_id,
                [p.line(0, self.clock.now(), self.organization_id) for p in pending],
                exc_info=True,
            )
            raise

    # -- reading -------------------------------------------------------------------

    async def query(
        self,
        *,
        patient_ref: str | None = None,
        actor_id: uuid.UUID | None = None,
        action: str | None = None,
        since: dt.datetime | None = None,
        until: dt.datetime | None = None,
        cursor: str | None = None,
        limit: int = DEFAULT_LIMIT,
    ) -> Page[AuditRecord]:
        """One page of this organization's records matching every filter given, in chain
        (``seq``) order, oldest first.

        Hot and archived records alike (archived segments are read through the cache).
        Reads use their own short transaction, like writes, so records this unit just
        wrote are visible on every backend.
        ``since`` is inclusive, ``until`` exclusive; ``cursor`` is the previous page's
        ``next_cursor`` and ``limit`` follows :mod:`execstore.pages`.
        """
        limit = check_limit(limit)
        after = 0 if cursor is None else decode_cursor(_CURSOR_KIND, cursor, (int,))[0]
        async with self.sessions() as session:
            found = await self._query(
                session, patient_ref, actor_id, action, since, until, after, limit + 1
            )
        items = found[:limit]
        more = len(found) > limit
        return Page(
            items=items,
            next_cursor=encode_cursor(_CURSOR_KIND, (items[-1].seq,)) if more else None,
        )

    async def _query(
        self,
        session: AsyncSession,
        patient_ref: str | None,
        actor_id: uuid.UUID | None,
        action: str | None,
        since: dt.datetime | None,
        until: dt.datetime | None,
        cursor: int,
        limit: int,
    ) -> list[AuditRecord]:
        org = self.organization_id
        found: list[AuditRecord] = []
        with translate_database_errors():
            archived = await archived_end(session, org)
            if cursor < archived:
                for segment in await segments(session, org, after=cursor, since=since, until=until):
                    payload = await self.archives.read_bytes(segment.ref)
                    for record in _matching(
                        payload, patient_ref, actor_id, action, since, until, cursor
                    ):
                        found.append(record)
                        if len(found) == limit:
                            return found
            filters = await self._hot_filters(session, patient_ref, actor_id, action, since, until)
            if filters is not None:
                rows = await fetch_hot(
                    session,
                    org,
                    after=max(cursor, archived),
                    limit=limit - len(found),
                    filters=filters,
                )
                renderer = Renderer(self.state, org)
                await renderer.load(session, rows)
                found.extend(hot_record(renderer, row) for row in rows)
        return found

    async def _hot_filters(
        self,
        session: AsyncSession,
        patient_ref: str | None,
        actor_id: uuid.UUID | None,
        action: str | None,
        since: dt.datetime | None,
        until: dt.datetime | None,
    ) -> list[sa.ColumnElement[bool]] | None:
        filters: list[sa.ColumnElement[bool]] = []
        if patient_ref is not None:
            filters.append(_LOG.c.patient_ref == patient_ref)
        for kind, value, column in (
            (Kind.ACTOR, None if actor_id is None else str(actor_id), _LOG.c.actor),
            (Kind.ACTION, action, _LOG.c.action),
        ):
            if value is None:
                continue
            entry = await self.state.catalog.find(session, self.organization_id, kind, value)
            if entry is None:
                return None  # never seen: no hot record can match
            filters.append(column == entry)
        if since is not None:
            filters.append(_LOG.c.created_at >= since)
        if until is not None:
            filters.append(_LOG.c.created_at < until)
        # Always pass a filter so the portable path runs (the raw fast path is for scans).
        return filters or [sa.true()]

    async def export(
        self, since: dt.datetime | None = None, until: dt.datetime | None = None
    ) -> AsyncIterator[bytes]:
        """This organization's records as NDJSON lines (with newline), oldest first.

        Each line is the record's canonical form plus its chain link, exactly as archives
        hold it, so an export can be re-verified outside execstore.
        """
        org = self.organization_id
        low = b"" if since is None else _time_text(since)
        high = None if until is None else _time_text(until)
        async with self.sessions() as session:
            async for line in self._export(session, org, since, until, low, high):
                yield line

    async def _export(
        self,
        session: AsyncSession,
        org: uuid.UUID,
        since: dt.datetime | None,
        until: dt.datetime | None,
        low: bytes,
        high: bytes | None,
    ) -> AsyncIterator[bytes]:
        with translate_database_errors():
            archived = await archived_end(session, org)
            for segment in await segments(session, org, since=since, until=until):
                payload = await self.archives.read_bytes(segment.ref)
                for line in payload.split(b"\n"):
                    if line and _in_range(line, low, high):
                        yield line + b"\n"
            after = archived
            renderer = Renderer(self.state, org)
            while True:
                filters = []
                if since is not None:
                    filters.append(_LOG.c.created_at >= since)
                if until is not None:
                    filters.append(_LOG.c.created_at < until)
                rows = await fetch_hot(session, org, after=after, filters=filters or [sa.true()])
                if not rows:
                    return
                await renderer.load(session, rows)
                for row in rows:
                    digest = int(row[2]).to_bytes(8, "big", signed=True)
                    yield stored_line(renderer.line(row), digest) + b"\n"
                after = int(rows[-1][0])


def _time_text(value: dt.datetime) -> bytes:
    from execstore.audit.format import format_time

    return format_time(value).encode("ascii")


_TIME_AT = len(b'"created_at":"')


def _created_text(line: bytes) -> bytes:
    start = line.find(b'"created_at":"') + _TIME_AT
    return line[start : start + 27]


def _in_range(line: bytes, low: bytes, high: bytes | None) -> bool:
    created = _created_text(line)
    return created >= low and (high is None or created < high)


def _matching(
    payload: bytes,
    patient_ref: str | None,
    actor_id: uuid.UUID | None,
    action: str | None,
    since: dt.datetime | None,
    until: dt.datetime | None,
    after: int,
) -> Iterable[AuditRecord]:
    """Records of an archived segment's payload that match, found by byte search first."""
    import json

    needle: bytes | None = None
    if patient_ref is not None:
        needle = b'"patient_ref":' + quote(patient_ref).encode("utf-8")
    elif actor_id is not None:
        needle = b'"actor_id":' + quote(str(actor_id)).encode("utf-8")
    elif action is not None:
        needle = b'"action":' + quote(action).encode("utf-8")
    lines: Iterable[bytes]
    if needle is None:
        lines = (line for line in payload.split(b"\n") if line)
    else:
        lines = _lines_containing(payload, needle)
    low = b"" if since is None else _time_text(since)
    high = None if until is None else _time_text(until)
    for line in lines:
        if not _in_range(line, low, high):
            continue
        data = json.loads(line)
        if data["seq"] <= after:
            continue
        if patient_ref is not None and data["patient_ref"] != patient_ref:
            continue
        if actor_id is not None and data["actor_id"] != str(actor_id):
            continue
        if action is not None and data["action"] != action:
            continue
        data.pop("link", None)
        yield AuditRecord.model_validate(data)


def _lines_containing(payload: bytes, needle: bytes) -> Iterable[bytes]:
    position = payload.find(needle)
    while position >= 0:
        start = payload.rfind(b"\n", 0, position) + 1
        end = payload.find(b"\n", position)
        end = len(payload) if end < 0 else end
        yield payload[start:end]
        position = payload.find(needle, end)
