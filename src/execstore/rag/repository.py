"""Job RAG context through the ``EXECSTORE_RAG_MODE`` switch-over (``uow.rag``).

    async with store.unit(org_id) as uow:
        await uow.rag.save(job.id, context)          # RagContext or a mapping
        context = await uow.rag.get(job.id)          # exactly what was saved, order kept
        maybe = await uow.rag.find(job.id)           # the same, or None if it has none
        await uow.rag.mark_rule_used(job.id, "R-1", step_index=3, reason="...")
        page = await uow.rag.rule_usage("R-1", since, until)  # Page[RuleUse]
        top = await uow.rag.top_rules(since, until, limit=10)

Modes (:class:`execstore.config.RagMode`), overridable per unit (``store.unit(org,
rag_mode=...)``):

- ``legacy``: the legacy JSON table only;
- ``dual_write_read_legacy``: every write goes to both sides in the unit's one
  transaction (so a failed write leaves neither), reads come from legacy;
- ``dual_write_read_normalized``: writes to both, reads from normalized; a sampled
  share of ``get`` calls (``EXECSTORE_RAG_SHADOW_SAMPLE_RATE``) also reads legacy and
  compares — a mismatch is logged and counted (``store.rag_shadow_stats()``), never
  raised, and a failing shadow read is counted as a failure, never fails the read;
- ``normalized``: the normalized tables only.

Saves are write-once: saving an equal context again returns it, a different one raises
Conflict. Bad input is refused before anything is written (InvalidRagContext), text is
fitted (see :mod:`execstore.rag.types`); another organization's job is NotFound.
"""

from __future__ import annotations

import datetime as dt
import logging
import random
import uuid
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any

from pydantic import ValidationError

from execstore.arguments import checks_arguments
from execstore.clock import SYSTEM_CLOCK, Clock
from execstore.config import RagMode
from execstore.errors import (
    Conflict,
    InvalidArgument,
    InvalidRagContext,
    NotFound,
    explain,
    shown,
    translate_database_errors,
)
from execstore.operations.backfills import forget_completion
from execstore.pages import DEFAULT_LIMIT, Page, check_limit, decode_cursor, encode_cursor
from execstore.rag import counters, legacy_store, normalized
from execstore.rag.format import context_from_input
from execstore.rag.types import (
    RagContext,
    RagRule,
    RuleUse,
    TopRule,
    millis,
)
from execstore.repository import ScopedRepository, TransactionHooks, as_utc
from execstore.schema import models as m
from execstore.schema.rag import rag_backfill_verified

if TYPE_CHECKING:
    from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

__all__ = ["RagRepository", "as_context"]

log = logging.getLogger("execstore.rag")
_CURSOR_KIND = "rule_usage"


def as_context(context: RagContext | Mapping[str, Any]) -> RagContext:
    """``context`` validated; InvalidRagContext says what is wrong with a mapping."""
    if isinstance(context, RagContext):
        return context
    if not isinstance(context, Mapping):
        raise InvalidRagContext(f"a RAG context is a mapping, not {type(context).__name__}")
    try:
        return context_from_input(context)
    except (ValidationError, ValueError, TypeError) as exc:
        raise InvalidRagContext(f"invalid RAG context: {explain(exc)}") from exc


@checks_arguments
class RagRepository(ScopedRepository[m.ExecutionRagContext]):
    """Save and read the RAG context of this organization's jobs, in one RagMode."""

    model_type = m.ExecutionRagContext

    def __init__(
        self,
        *,
        session: AsyncSession,
        organization_id: uuid.UUID,
        mode: RagMode,
        sessions: async_sessionmaker[AsyncSession],
        hooks: TransactionHooks | None = None,
        shadow_sample_rate: float = 0.0,
        sample: Callable[[], float] = random.random,
        clock: Clock = SYSTEM_CLOCK,
    ) -> None:
        super().__init__(session=session, organization_id=organization_id, hooks=hooks, clock=clock)
        self.mode = mode
        self.sessions = sessions
        self.shadow_sample_rate = shadow_sample_rate
        self._sample = sample

    @property
    def _writes_legacy(self) -> bool:
        return self.mode is not RagMode.NORMALIZED

    @property
    def _writes_normalized(self) -> bool:
        return self.mode is not RagMode.LEGACY

    @property
    def _reads_legacy(self) -> bool:
        return self.mode in (RagMode.LEGACY, RagMode.DUAL_WRITE_READ_LEGACY)

    # -- API -----------------------------------------------------------------------------

    async def save(self, job_id: uuid.UUID, context: RagContext | Mapping[str, Any]) -> RagContext:
        """The stored context (text fitted): written once per job.

        A context without ``retrieved_at`` is stamped with the clock's time; saved again
        without one, it matches the stored context whatever time that holds. Raises
        InvalidRagContext for bad input, NotFound for a job of another organization,
        Conflict if the job already has a different context.
        """
        given = as_context(context)
        ctx = given
        if given.retrieved_at is None:
            ctx = given.model_copy(update={"retrieved_at": millis(self.clock.now())})
        with translate_database_errors():
            existing = await self._read(job_id)
            if existing is None and self._writes_legacy and self._writes_normalized:
                # A dual write writes both sides, so a context on the side this mode does
                # not read (saved before the switch, or not backfilled yet) is the job's.
                existing = await self._read_unread_side(job_id)
            if existing is not None:
                same_time = given.retrieved_at is None or existing.retrieved_at == ctx.retrieved_at
                if not same_time or existing.model_copy(update={"retrieved_at": None}) != (
                    ctx.model_copy(update={"retrieved_at": None})
                ):
                    raise Conflict(f"job {job_id} already has a different RAG context")
                return existing
            if self.mode is RagMode.NORMALIZED:
                await self._write_normalized(job_id, ctx)
            elif self.mode is RagMode.LEGACY:
                await legacy_store.insert(self.session, self.organization_id, job_id, ctx)
                # A legacy row only: the backfill has a row to move again.
                await forget_completion(self.session, "rag")
            else:  # both sides or neither, even if the caller goes on after an error
                async with self.session.begin_nested():
                    await self._write_normalized(job_id, ctx)
                    await legacy_store.insert(self.session, self.organization_id, job_id, ctx)
        return ctx

    async def _write_normalized(self, job_id: uuid.UUID, ctx: RagContext) -> None:
        if not await normalized.insert(self.session, self.organization_id, job_id, ctx):
            raise NotFound(f"jobs {job_id} not found")

    async def get(self, job_id: uuid.UUID) -> RagContext:
        """The job's context as saved (order kept); NotFound if it has none (or the job is
        another organization's)."""
        found = await self.find(job_id)
        if found is None:
            raise NotFound(f"job {job_id} has no RAG context")
        return found

    async def find(self, job_id: uuid.UUID) -> RagContext | None:
        """The job's context as saved (order kept), None if it has none (or the job is
        another organization's)."""
        with translate_database_errors():
            try:
                found = await self._read(job_id)
            except NotFound:
                return None
        if (
            self.mode is RagMode.DUAL_WRITE_READ_NORMALIZED
            and self.shadow_sample_rate > 0
            and self._sample() < self.shadow_sample_rate
        ):
            await self._shadow_compare(job_id, found)
        return found

    async def mark_rule_used(
        self,
        job_id: uuid.UUID,
        rule: str | int,
        step_index: int | None = None,
        reason: str | None = None,
        at: dt.datetime | None = None,
    ) -> RagRule:
        """The rule (by rule id, or by position in the context) marked used; updates both sides.

        Used ``at`` (default: the clock's now). Marking a rule again replaces its step,
        time and reason; ``total_rules_used`` grows only the first time. NotFound if the
        job, its context or the rule is not there.
        """
        when = millis(at or self.clock.now())
        with translate_database_errors():
            legacy_row = (
                await legacy_store.find(self.session, self.organization_id, job_id, lock=True)
                if self._writes_legacy
                else None
            )
            has_normalized = self._writes_normalized and await normalized.lock(
                self.session, self.organization_id, job_id
            )
            if self._reads_legacy:
                current = legacy_row.context if legacy_row is not None else None
            else:
                current = (
                    await normalized.fetch(self.session, self.organization_id, job_id)
                    if has_normalized
                    else None
                )
            if current is None:
                await self._require_job(job_id)
                raise NotFound(f"job {job_id} has no RAG context")
            position = _position(current, rule)
            if position is None:
                raise NotFound(f"rule {shown(rule)} is not in the RAG context of job {job_id}")
            before = current.rules[position]
            marked = _validated_use(
                before, {"used_at_step_index": step_index, "used_at": when, "usage_reason": reason}
            )
            rules = list(current.rules)
            rules[position] = marked
            updated = current.model_copy(
                update={
                    "rules": rules,
                    "total_rules_used": current.total_rules_used + (0 if before.was_used else 1),
                }
            )
            if has_normalized:
                await normalized.mark(self.session, job_id, position, marked)
            if legacy_row is not None:
                await legacy_store.write_uses(self.session, legacy_row.id, updated)
                if self.mode is RagMode.LEGACY:
                    # Changed on one side only: the backfill must move and verify it again.
                    await self.session.execute(
                        rag_backfill_verified.delete().where(
                            rag_backfill_verified.c.legacy_id == legacy_row.id
                        )
                    )
                    await forget_completion(self.session, "rag")
        return marked

    async def rule_usage(
        self,
        rule_id: str,
        since: dt.datetime,
        until: dt.datetime,
        *,
        cursor: str | None = None,
        limit: int = DEFAULT_LIMIT,
    ) -> Page[RuleUse]:
        """The jobs that retrieved ``rule_id`` in ``[since, until)``, oldest first, paginated.

        Each item says whether the job used the rule. ``cursor`` is the previous page's
        ``next_cursor`` and ``limit`` follows :mod:`execstore.pages`.
        """
        limit = check_limit(limit)
        after: tuple[dt.datetime, uuid.UUID] | None = None
        if cursor is not None:
            at, job = decode_cursor(_CURSOR_KIND, cursor, (dt.datetime, uuid.UUID))
            after = (at, job)
        if not isinstance(rule_id, str):
            raise InvalidArgument(f"rule_id is text, not {type(rule_id).__name__}")
        since, until = _window(since, until)
        with translate_database_errors():
            if self._reads_legacy:
                start = since if after is None else max(since, after[0])
                pairs = await legacy_store.rows_in_window(
                    self.session, self.organization_id, start, until, rule_id=rule_id
                )
                items = legacy_store.uses_in_window(pairs, rule_id, limit=limit + 1, after=after)
            else:
                items = await normalized.rule_usage(
                    self.session,
                    self.organization_id,
                    rule_id,
                    since,
                    until,
                    limit=limit + 1,
                    after=after,
                )
        more = len(items) > limit
        items = items[:limit]
        last = items[-1] if more else None
        return Page(
            items=items,
            next_cursor=(
                None
                if last is None
                else encode_cursor(_CURSOR_KIND, (last.retrieved_at, last.job_id))
            ),
        )

    async def top_rules(
        self, since: dt.datetime, until: dt.datetime, limit: int = 10
    ) -> list[TopRule]:
        """The ``limit`` rules retrieved by the most jobs in ``[since, until)``, with use counts.

        ``limit`` follows the limit rule of :mod:`execstore.pages` (1..MAX_LIMIT).
        """
        limit = check_limit(limit)
        since, until = _window(since, until)
        with translate_database_errors():
            if self._reads_legacy:
                rules = _count_legacy(
                    await legacy_store.rows_in_window(
                        self.session, self.organization_id, since, until
                    )
                )
            else:
                rules = await normalized.top_rules(self.session, self.organization_id, since, until)
        rules.sort(key=lambda r: (-r.retrieved, -r.used, r.rule_id or ""))
        return rules[:limit]

    # -- internals -----------------------------------------------------------------------

    async def _read(self, job_id: uuid.UUID) -> RagContext | None:
        if not self._reads_legacy:
            return await normalized.fetch(self.session, self.organization_id, job_id)
        await self._require_job(job_id)
        row = await legacy_store.find(self.session, self.organization_id, job_id)
        return None if row is None else row.context

    async def _read_unread_side(self, job_id: uuid.UUID) -> RagContext | None:
        if self._reads_legacy:
            return await normalized.fetch(self.session, self.organization_id, job_id)
        row = await legacy_store.find(self.session, self.organization_id, job_id)
        return None if row is None else row.context

    async def _require_job(self, job_id: uuid.UUID) -> None:
        if not await normalized.job_exists(self.session, self.organization_id, job_id):
            raise NotFound(f"jobs {job_id} not found")

    async def _shadow_compare(self, job_id: uuid.UUID, found: RagContext | None) -> None:
        counts = {counters.COMPARED: 1}
        try:
            async with self.session.begin_nested():
                row = await legacy_store.find(self.session, self.organization_id, job_id)
            legacy = None if row is None else row.context
            if legacy != found:
                counts[counters.MISMATCHES] = 1
                log.warning(
                    "RAG shadow read: job %s differs between normalized and legacy (%s)",
                    job_id,
                    ", ".join(_differences(found, legacy)),
                )
        except Exception:  # a shadow read never fails the read it shadows
            counts[counters.FAILURES] = 1
            log.warning("RAG shadow read of job %s failed", job_id, exc_info=True)

        async def count() -> None:
            await counters.bump(self.sessions, counts, at=self.clock.now())

        if self.hooks is None:
            await count()
        else:  # after the unit ends: never wait for (or hold) its locks
            self.hooks.on_commit(count)
            self.hooks.on_rollback(count)


def _validated_use(rule: RagRule, usage: dict[str, Any]) -> RagRule:
    try:
        return RagRule.model_validate({**rule.model_dump(), **usage, "was_used": True})
    except ValidationError as exc:
        raise InvalidRagContext(f"invalid rule usage: {explain(exc)}") from exc


def _position(context: RagContext, rule: str | int) -> int | None:
    if isinstance(rule, bool):
        return None
    if isinstance(rule, int):
        return rule if 0 <= rule < len(context.rules) else None
    return next((i for i, r in enumerate(context.rules) if r.rule_id == rule), None)


def _window(since: dt.datetime, until: dt.datetime) -> tuple[dt.datetime, dt.datetime]:
    """``[since, until)`` over the stored times, which are whole milliseconds.

    Both ends are rounded *up* to a whole millisecond: a stored time is at or after
    ``since`` exactly when it is at or after ``since`` rounded up, and before ``until``
    exactly when it is before ``until`` rounded up. (Cutting the ends down let in a
    context of the millisecond before ``since`` and left out one of the millisecond
    before ``until``.)
    """
    if as_utc(until) < as_utc(since):
        raise InvalidArgument("until must not be before since")
    try:
        return _ceil_millis(since), _ceil_millis(until)
    except OverflowError as exc:  # within a millisecond of the end of year 9999
        raise InvalidArgument("since and until must be before the year 10000") from exc


def _ceil_millis(value: dt.datetime) -> dt.datetime:
    cut = millis(value)
    assert cut is not None
    return cut if cut == as_utc(value) else cut + dt.timedelta(milliseconds=1)


def _count_legacy(pairs: list[tuple[uuid.UUID, RagContext]]) -> list[TopRule]:
    totals: dict[Any, list[Any]] = {}
    for _, context in pairs:
        for rule in context.rules:
            key = rule.rule_id if rule.rule_id is not None else rule.key
            seen = totals.setdefault(key, [rule.rule_id, rule.rule_type, 0, 0])
            seen[2] += 1
            seen[3] += int(rule.was_used)
    return [TopRule(rule_id=r, rule_type=t, retrieved=n, used=u) for r, t, n, u in totals.values()]


def _differences(a: RagContext | None, b: RagContext | None) -> list[str]:
    if a is None or b is None:
        return ["normalized missing" if a is None else "legacy missing"]
    return [name for name in RagContext.model_fields if getattr(a, name) != getattr(b, name)]
