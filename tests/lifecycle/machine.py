"""The lifecycle state machine: years of writes, operator jobs, crashes and tampering.

Each example gets a PostgreSQL database of its own (a copy of a migrated template), a
blob directory of its own, an :class:`~execstore.ExecStore` on a
:class:`~execstore.ManualClock` and an event loop it drives itself (Hypothesis rules are
synchronous). Rules write through the public API, move the clock, change retention, run
the operator jobs (alone, side by side, or crashed part-way and maybe rerun), delete jobs
and tamper with rows and blobs; after every step the invariants compare what execstore
returns with :mod:`tests.lifecycle.model`.

``LifecycleMachine.server`` and ``.template`` must be set before a run (the test and
``scripts/soak.py`` do); ``LifecycleMachine.stats`` counts examples and steps.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import gzip
import json
import shutil
import tempfile
import uuid
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any, ClassVar

import asyncpg
import pytest
import sqlalchemy as sa
from hypothesis import strategies as st
from hypothesis.stateful import (
    RuleBasedStateMachine,
    initialize,
    invariant,
    precondition,
    rule,
)

from execstore.archival import reconcile
from execstore.audit import checkpoint_organizations, verify_audit
from execstore.audit.archival import archive_audit
from execstore.clock import ManualClock
from execstore.config import load_settings
from execstore.errors import ArchiveError, InvalidRetention, NotFound
from execstore.logs import NewLogEntry, archive_logs
from execstore.operations import BatchReport, apply_retention
from execstore.results.backfill import backfill_results
from execstore.results.format import result_archive_key
from execstore.schema import models as m
from execstore.schema.audit import PhiAuditArchive
from execstore.store import ExecStore
from support.postgres import PgServer

from .model import (
    AUDIT_FLOOR_DAYS,
    AUDIT_HOT_DAYS,
    GONE,
    LIVE,
    LOG_DEFAULT_RETENTION_DAYS,
    LOG_HOT_DAYS,
    MAYBE,
    NO,
    UTC,
    YES,
    Line,
    Model,
    Org,
    Record,
    month_end,
    six_years_after,
)
from .model import Job as JobModel

JOBS = [
    "archive_logs",
    "log_retention",
    "archive_audit",
    "audit_retention",
    "checkpoint",
    "verify",
    "reconcile",
    "maintain",
    "archive_results",
]
DELETING = {"archive_logs", "log_retention", "archive_audit", "audit_retention"}
"""Jobs whose crash or overlap leaves deletions uncertain."""
ZONES = [
    dt.UTC,
    dt.timezone(dt.timedelta(hours=5, minutes=30)),
    dt.timezone(dt.timedelta(hours=-8)),
    dt.timezone(dt.timedelta(hours=14)),
    dt.timezone(dt.timedelta(hours=-12)),
]
STARTS = [
    dt.datetime(2031, 12, 31, 23, 59, 59, tzinfo=UTC),
    dt.datetime(2032, 2, 29, 12, 0, tzinfo=UTC),
    dt.datetime(2035, 1, 31, 0, 0, tzinfo=UTC),
    dt.datetime(2040, 6, 30, 23, 59, 59, 999999, tzinfo=UTC),
]
TICK = dt.timedelta(microseconds=1)
MILLI = dt.timedelta(milliseconds=1)
SHARED_RULE = "R-shared"


class SimulatedCrash(asyncio.CancelledError):
    """What a killed worker looks like to the code under test: its task is cancelled."""


class FaultyBlobs:
    """The store's blob store, which can be told to crash at its n-th put or delete.

    ``arm(n, after)``: the n-th mutating call (from 0) raises :class:`SimulatedCrash`,
    before touching the blob or (``after``) once it is done. Everything else passes through.
    """

    def __init__(self, inner: Any) -> None:
        self.inner = inner
        self.countdown: int | None = None
        self.after = False
        self.tripped = False

    def arm(self, n: int, *, after: bool) -> None:
        self.countdown, self.after, self.tripped = n, after, False

    def disarm(self) -> None:
        self.countdown = None

    def _due(self) -> bool:
        if self.countdown is None:
            return False
        if self.countdown == 0:
            self.countdown = None
            self.tripped = True
            return True
        self.countdown -= 1
        return False

    async def put(self, key: str, data: Any, **kwargs: Any) -> Any:
        due = self._due()
        if due and not self.after:
            raise SimulatedCrash(f"crash before putting {key}")
        result = await self.inner.put(key, data, **kwargs)
        if due:
            raise SimulatedCrash(f"crash after putting {key}")
        return result

    async def delete(self, key: str) -> bool:
        due = self._due()
        if due and not self.after:
            raise SimulatedCrash(f"crash before deleting {key}")
        result = bool(await self.inner.delete(key))
        if due:
            raise SimulatedCrash(f"crash after deleting {key}")
        return result

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)


def _org_of_key(key: str) -> uuid.UUID | None:
    parts = key.split("/")
    try:
        return uuid.UUID(parts[1])
    except (IndexError, ValueError):
        return None


class LifecycleMachine(RuleBasedStateMachine):
    server: ClassVar[PgServer | None] = None
    template: ClassVar[str | None] = None
    stats: ClassVar[dict[str, int]] = {"examples": 0, "steps": 0}

    def __init__(self) -> None:
        super().__init__()
        self.loop = asyncio.new_event_loop()
        self.model = Model()
        self.store: Any = None
        self.opened: Any = None
        self.database: str | None = None
        self.blob_dir: Path | None = None
        self.clock: ManualClock | None = None
        self.faulty: FaultyBlobs | None = None
        self.counter = 0
        self.chunk_rows = 2000
        self.audit_days = AUDIT_FLOOR_DAYS
        # (kind, org) -> the cut-off of a deletion run that crashed or overlapped another:
        # until a completed run reaches it, that organization's archives of that kind may
        # name a pointer row whose blob is already gone ("meanwhile", README).
        self.dirty: dict[tuple[str, uuid.UUID], dt.datetime] = {}
        self.tampered_seqs: set[tuple[uuid.UUID, int]] = set()
        type(self).stats["examples"] += 1

    # -- plumbing -----------------------------------------------------------------------

    def run(self, coro: Awaitable[Any]) -> Any:
        return self.loop.run_until_complete(coro)

    @property
    def now(self) -> dt.datetime:
        assert self.clock is not None
        return self.clock.now()

    def teardown(self) -> None:
        tally = type(self).stats
        for name, count in (
            ("lines", len(self.model.lines)),
            ("lines archived", sum(x.archived == YES for x in self.model.lines.values())),
            (
                "lines expired",
                sum(
                    x.fate == GONE and not self.model.jobs[x.job].deleted
                    for x in self.model.lines.values()
                ),
            ),
            ("records", len(self.model.records)),
            ("records archived", sum(r.archived == YES for r in self.model.records.values())),
            ("records expired", sum(r.fate == GONE for r in self.model.records.values())),
            ("jobs deleted", sum(j.deleted for j in self.model.jobs.values())),
            ("blobs tampered", len(self.model.lost_keys | self.model.corrupt_keys)),
        ):
            tally[name] = tally.get(name, 0) + count
        try:
            if self.store is not None:
                self.run(self.opened.__aexit__(None, None, None))
            if self.database is not None:
                self.run(self._drop_database())
        finally:
            self.loop.run_until_complete(self.loop.shutdown_asyncgens())
            self.loop.close()
            if self.blob_dir is not None:
                shutil.rmtree(self.blob_dir, ignore_errors=True)

    async def _create_database(self) -> str:
        assert self.server is not None
        assert self.template is not None
        name = f"execstore_life_{uuid.uuid4().hex[:12]}"
        conn = await asyncpg.connect(self.server.dsn())
        try:
            await conn.execute(f'CREATE DATABASE "{name}" TEMPLATE "{self.template}"')
        finally:
            await conn.close()
        return name

    async def _drop_database(self) -> None:
        assert self.server is not None
        conn = await asyncpg.connect(self.server.dsn())
        try:
            await conn.execute(f'DROP DATABASE IF EXISTS "{self.database}" WITH (FORCE)')
        finally:
            await conn.close()

    def _unique(self, prefix: str) -> str:
        self.counter += 1
        return f"{prefix}{self.counter}"

    # -- setup --------------------------------------------------------------------------

    @initialize(
        start=st.one_of(
            st.sampled_from(STARTS),
            st.datetimes(
                min_value=dt.datetime(2030, 1, 1),
                max_value=dt.datetime(2045, 12, 31),
                timezones=st.sampled_from(ZONES),
            ),
        ),
        orgs=st.integers(2, 3),
        chunk_rows=st.sampled_from([1, 3, 2000]),
    )
    def setup(self, start: dt.datetime, orgs: int, chunk_rows: int) -> None:
        self.chunk_rows = chunk_rows
        self.database = self.run(self._create_database())
        self.blob_dir = Path(tempfile.mkdtemp(prefix="execstore-life-"))
        assert self.server is not None
        settings = load_settings(
            database_url=self.server.url(self.database), blob_url=f"file:{self.blob_dir}"
        )
        self.clock = ManualClock(start)
        self.opened = ExecStore.open(settings, clock=self.clock)
        self.store = self.run(self.opened.__aenter__())
        self.faulty = FaultyBlobs(self.store.archives.store)
        self.store.archives.store = self.faulty
        for _ in range(orgs):
            self.run(self._new_org())

    async def _new_org(self) -> None:
        org = uuid.uuid4()
        async with self.store.unit(org) as uow:
            await uow.reference.add_organization(f"org {org.hex[:6]}")
            workflow = await uow.reference.add_workflow("Claim status check")
        self.model.orgs[org] = Org(org, workflow.id)

    def _org(self, data: st.DataObject) -> uuid.UUID:
        return data.draw(st.sampled_from(sorted(self.model.orgs, key=str)), label="org")

    def _live_jobs(self) -> list[uuid.UUID]:
        return sorted((j for j, job in self.model.jobs.items() if not job.deleted), key=str)

    # -- writes -------------------------------------------------------------------------

    @rule(data=st.data())
    def create_job(self, data: st.DataObject) -> None:
        org = self._org(data)
        self.run(self._create_job(org))

    def new_job(self, org: uuid.UUID) -> uuid.UUID:
        """A new job of ``org``, created now."""
        job: uuid.UUID = self.run(self._create_job(org))
        return job

    async def _create_job(self, org: uuid.UUID) -> uuid.UUID:
        async with self.store.unit(org) as uow:
            job = await uow.jobs.create(workflow_id=self.model.orgs[org].workflow)
        assert job.created_at == self.now
        self.model.jobs[job.id] = JobModel(org, job.id, self.now)
        return job.id

    def _log_time(self, data: st.DataObject) -> dt.datetime:
        now = self.now
        kind = data.draw(st.sampled_from(["recent", "old", "month_edge", "leap", "now"]))
        if kind == "now":
            moment = now
        elif kind == "recent":
            moment = now - dt.timedelta(seconds=data.draw(st.integers(0, 90 * 86400)))
        elif kind == "old":
            moment = now - dt.timedelta(seconds=data.draw(st.integers(0, 800 * 86400)))
        elif kind == "month_edge":
            back = data.draw(st.integers(0, 14))
            edge = month_end(now)
            for _ in range(back + 1):
                edge = _month_start_before(edge)
            moment = edge + data.draw(st.sampled_from([-TICK, dt.timedelta(0), TICK]))
        else:
            year = now.year - data.draw(st.integers(0, 7))
            while year % 4:
                year -= 1
            moment = dt.datetime(year, 2, 29, tzinfo=UTC) + dt.timedelta(
                seconds=data.draw(st.integers(0, 86399))
            )
        moment = min(moment, now)
        zone = data.draw(st.sampled_from(ZONES))
        return moment.astimezone(zone)

    @precondition(lambda self: bool(self._live_jobs()))
    @rule(data=st.data())
    def append_logs(self, data: st.DataObject) -> None:
        job = data.draw(st.sampled_from(self._live_jobs()), label="job")
        self.append(job, [self._log_time(data) for _ in range(data.draw(st.integers(1, 4)))])

    def append(self, job: uuid.UUID, times: list[dt.datetime]) -> list[str]:
        """Append lines at ``times`` to ``job``'s log; their (unique) messages."""
        entries = [(self._unique("L"), t) for t in times]
        org = self.model.jobs[job].org

        async def go() -> None:
            async with self.store.unit(org) as uow:
                await uow.logs.append(
                    job, [NewLogEntry(message, timestamp=t) for message, t in entries]
                )

        self.run(go())
        for message, t in entries:
            self.model.lines[message] = Line(org, job, message, t.astimezone(UTC))
        return [message for message, _ in entries]

    @precondition(lambda self: bool(self._live_jobs()))
    @rule(data=st.data())
    def save_result(self, data: st.DataObject) -> None:
        candidates = [j for j in self._live_jobs() if self.model.jobs[j].result is None]
        if not candidates:
            return
        job = data.draw(st.sampled_from(candidates), label="job")
        output = {
            "success": data.draw(st.booleans()),
            "stepResults": [{"stepIndex": 0, "action": self._unique("A")}],
        }
        org = self.model.jobs[job].org

        async def go() -> None:
            async with self.store.unit(org) as uow:
                await uow.results.save(job, output)

        self.run(go())
        self.model.jobs[job].result = output

    @precondition(lambda self: bool(self._live_jobs()))
    @rule(data=st.data())
    def save_rag(self, data: st.DataObject) -> None:
        candidates = [j for j in self._live_jobs() if self.model.jobs[j].rag is None]
        if not candidates:
            return
        job = data.draw(st.sampled_from(candidates), label="job")
        when = self._log_time(data).replace(microsecond=0)
        context = {
            "retrievedAt": when.isoformat(),
            "ragRetrievalTimeMs": data.draw(st.integers(0, 5000)),
            "totalRulesRetrieved": 2,
            "rules": [
                {
                    "ruleId": self._unique("R"),
                    "ruleType": "billing",
                    "condition": "E/M + procedure",
                    "action": "append modifier 25",
                    "retrievalScore": 0.5,
                },
                {  # every context of every organization retrieves this one
                    "ruleId": SHARED_RULE,
                    "ruleType": "billing",
                    "condition": "a shared rule",
                    "action": "counted per organization",
                    "retrievalScore": 0.25,
                },
            ],
        }
        org = self.model.jobs[job].org

        async def go() -> Any:
            async with self.store.unit(org) as uow:
                return await uow.rag.save(job, context)

        stored = self.run(go())
        self.model.jobs[job].rag = stored.model_dump()
        self.model.jobs[job].rag_at = when.astimezone(UTC)

    @rule(data=st.data(), count=st.integers(1, 3))
    def record_audit(self, data: st.DataObject, count: int) -> None:
        self.record(self._org(data), count)

    def record(self, org: uuid.UUID, count: int) -> None:
        """Record ``count`` PHI accesses of ``org`` now."""
        names = [self._unique("clm_") for _ in range(count)]

        async def go() -> list[Any]:
            async with self.store.unit(org) as uow:
                return list(
                    await uow.audit.record_many(
                        [
                            {"action": "view", "resource_type": "claim", "resource_id": name}
                            for name in names
                        ]
                    )
                )

        receipts = self.run(go())
        for receipt in receipts:
            assert receipt.created_at == self.now
            assert receipt.seq is not None
            self.model.records[receipt.id] = Record(org, receipt.id, receipt.seq, self.now)

    # -- time and settings --------------------------------------------------------------

    @rule(
        step=st.one_of(
            st.integers(1, 59).map(lambda s: dt.timedelta(seconds=s)),
            st.integers(1, 48).map(lambda h: dt.timedelta(hours=h)),
            st.integers(1, 120).map(lambda d: dt.timedelta(days=d)),
            st.integers(120, 3 * 365).map(lambda d: dt.timedelta(days=d)),
            st.integers(1, 10**6).map(lambda us: dt.timedelta(microseconds=us)),
        )
    )
    def advance_clock(self, step: dt.timedelta) -> None:
        assert self.clock is not None
        self.clock.advance(step)

    @rule(data=st.data())
    def jump_to_a_boundary(self, data: st.DataObject) -> None:
        """Move the clock to where some record's fate changes, or a tick either side."""
        assert self.clock is not None
        targets: list[dt.datetime] = []
        for line in self.model.lines.values():
            if line.fate == GONE:
                continue
            days = self.model.orgs[line.org].log_days
            targets += [
                month_end(line.at) + dt.timedelta(days=LOG_HOT_DAYS),
                line.at + dt.timedelta(days=days),
                month_end(line.at) + dt.timedelta(days=days),
            ]
        for record in self.model.records.values():
            if record.fate == GONE:
                continue
            targets += [
                record.at + dt.timedelta(days=AUDIT_HOT_DAYS),
                record.at + dt.timedelta(days=self.audit_days),
                six_years_after(record.at),
                six_years_after(month_end(record.at)),
            ]
        targets = sorted(t for t in set(targets) if t > self.now + TICK)
        if not targets:
            return
        if len(targets) > 60:
            targets = targets[:20] + targets[20 :: max(1, (len(targets) - 20) // 40)]
        target = data.draw(st.sampled_from(targets), label="boundary")
        target += data.draw(st.sampled_from([-TICK, dt.timedelta(0), TICK]), label="offset")
        zone = data.draw(st.sampled_from(ZONES))
        self.clock.set(max(target, self.now).astimezone(zone))

    @rule(data=st.data(), days=st.one_of(st.none(), st.integers(LOG_HOT_DAYS, 800)))
    def set_log_retention(self, data: st.DataObject, days: int | None) -> None:
        self.keep_logs(self._org(data), days)

    def keep_logs(self, org: uuid.UUID, days: int | None) -> None:
        """Set ``org``'s log retention (None: the default)."""

        async def go() -> Any:
            async with self.store.unit(org) as uow:
                return await uow.logs.set_retention(days)

        stored = self.run(go())
        assert stored.retention_days == (365 if days is None else days)
        self.model.orgs[org].log_retention = days

    @rule(data=st.data(), days=st.integers(-5, LOG_HOT_DAYS - 1))
    def refuse_a_short_log_retention(self, data: st.DataObject, days: int) -> None:
        org = self._org(data)

        async def go() -> Any:
            async with self.store.unit(org) as uow:
                await uow.logs.set_retention(days)

        try:
            self.run(go())
        except InvalidRetention:
            pass
        else:
            raise AssertionError(f"a log retention of {days} days was accepted")

    @rule(days=st.one_of(st.just(AUDIT_FLOOR_DAYS), st.integers(AUDIT_FLOOR_DAYS, 4000)))
    def set_audit_retention(self, days: int) -> None:
        self.audit_days = days

    @rule(data=st.data(), days=st.integers(0, AUDIT_FLOOR_DAYS - 1))
    def refuse_a_short_audit_retention(self, data: st.DataObject, days: int) -> None:
        org = data.draw(st.one_of(st.none(), st.sampled_from(sorted(self.model.orgs, key=str))))
        assert self.clock is not None
        # Below one day it is no retention at all; from one day on, the six-year floor.
        why = "at least 1" if days < 1 else "shorter than six years"
        with pytest.raises(InvalidRetention, match=why):
            self.run(
                apply_retention(
                    self.store.sessions,
                    self.store.archives,
                    "audit",
                    days=days,
                    organization_id=org,
                    clock=self.clock,
                )
            )

    # -- operator jobs ------------------------------------------------------------------

    def _job(self, name: str, org: uuid.UUID | None) -> Callable[[], Awaitable[Any]]:
        store, clock = self.store, self.clock
        assert clock is not None
        if name == "archive_logs":
            rows = self.chunk_rows
            return lambda: archive_logs(
                store.engine,
                store.sessions,
                store.archives,
                hot_days=LOG_HOT_DAYS,
                chunk_rows=rows,
                clock=clock,
            )
        if name == "log_retention":
            return lambda: apply_retention(
                store.sessions,
                store.archives,
                "logs",
                days=LOG_DEFAULT_RETENTION_DAYS,
                hot_days=LOG_HOT_DAYS,
                organization_id=org,
                clock=clock,
            )
        if name == "archive_audit":
            return lambda: archive_audit(
                store.sessions,
                store.archives,
                hot_days=AUDIT_HOT_DAYS,
                organization_id=org,
                clock=clock,
            )
        if name == "audit_retention":
            days = self.audit_days
            return lambda: apply_retention(
                store.sessions,
                store.archives,
                "audit",
                days=days,
                organization_id=org,
                clock=clock,
            )
        if name == "checkpoint":
            return lambda: checkpoint_organizations(
                store.sessions, store.archives, organization_id=org, clock=clock
            )
        if name == "verify":
            return lambda: verify_audit(store.sessions, store.archives, organization_id=org)
        if name == "reconcile":
            return lambda: reconcile(
                store.sessions,
                store.archives,
                store.archive_kinds,
                repair=True,
                verify=True,
                organization_id=org,
                clock=clock,
            )
        if name == "maintain":
            from execstore.cli.maintain import MaintenanceOptions, run_steps

            return lambda: run_steps(store, MaintenanceOptions())
        if name == "archive_results":
            return lambda: backfill_results(
                store.sessions, store.archives, organization_id=org, clock=clock
            )
        raise AssertionError(name)

    def _scope(self, name: str, data: st.DataObject) -> uuid.UUID | None:
        if name in {"archive_logs", "maintain"}:
            return None  # these act on every organization
        return data.draw(
            st.one_of(st.none(), st.sampled_from(sorted(self.model.orgs, key=str))), label="scope"
        )

    def _cutoff(self, name: str, org: uuid.UUID) -> dt.datetime:
        if name == "log_retention":
            return self.now - dt.timedelta(days=self.model.orgs[org].log_days)
        return self.now - dt.timedelta(days=self.audit_days)

    def _apply(self, name: str, org: uuid.UUID | None, *, certain: bool) -> None:
        """What the model says a run of ``name`` did (``certain``: it completed, alone)."""
        now = self.now
        if name == "archive_logs":
            self.model.archive_logs(now, certain=certain)
        elif name == "log_retention":
            self.model.log_retention(now, org, certain=certain)
        elif name == "archive_audit":
            self.model.archive_audit(now, org, certain=certain)
        elif name == "audit_retention":
            self.model.audit_retention(now, self.audit_days, org, certain=certain)
        if name in {"log_retention", "audit_retention"}:
            kind = "logs" if name == "log_retention" else "audit"
            for each in self.model.orgs if org is None else [org]:
                cutoff = self._cutoff(name, each)
                key = (kind, each)
                if not certain:
                    self.dirty[key] = max(cutoff, self.dirty.get(key, cutoff))
                elif key in self.dirty and cutoff >= self.dirty[key]:
                    del self.dirty[key]

    def _check_report(self, name: str, org: uuid.UUID | None, report: Any) -> None:
        """What a completed run alone must have reported."""
        if name == "verify":
            self._check_verify(org, report)
        elif name == "reconcile":
            self._check_reconcile(org, report)
        elif name == "maintain":
            assert all(step.status != "failed" for step in report), report
        elif name in {"archive_logs", "log_retention", "archive_results"}:
            excused = {o for (_, o) in self.dirty} | {
                line.org for line in self.model.lines.values() if line.taint
            }
            for aside in report.set_aside:
                assert any(str(o) in aside.key for o in excused) or "job" in aside.key, (
                    name,
                    aside,
                )
        elif name in {"archive_audit", "audit_retention"}:
            for aside in report.set_aside:
                owner = _org_of_key(aside.key) or uuid.UUID(aside.key)
                assert self._audit_excused(owner), (name, aside)

    def _audit_excused(self, org: uuid.UUID) -> bool:
        return self.model.orgs[org].audit_taint is not None or ("audit", org) in self.dirty

    def _check_verify(self, org: uuid.UUID | None, report: BatchReport) -> None:
        found = {o.organization_id: o for o in report.details["organizations"]}
        aside = {a.key for a in report.set_aside}
        for each in self.model.orgs.values() if org is None else [self.model.orgs[org]]:
            result = found.get(each.id)
            if each.audit_taint is not None:
                assert result is not None, f"verify left out {each.id}"
                assert result.problem is not None, (
                    f"verify did not name {each.audit_taint} in {each.id}"
                )
                assert str(each.id) in aside, f"verify did not set {each.id} aside"
            elif ("audit", each.id) not in self.dirty and result is not None:
                assert result.problem is None, result.problem
                assert str(each.id) not in aside, report.set_aside

    def _check_reconcile(self, org: uuid.UUID | None, reports: list[BatchReport]) -> None:
        pointers = self.run(self._pointer_keys())
        lost = {k for r in reports for k in (*r.details["lost"], *r.details["still_lost"])}
        corrupt = {k for r in reports for k in r.details["corrupt"]}
        orphans = {k for r in reports for k in r.details["orphans"]}
        in_scope = {k for k in pointers if org is None or _org_of_key(k) == org}
        for key in self.model.lost_keys & in_scope:
            assert key in lost, f"reconcile did not name the missing archive {key}"
        for key in (self.model.corrupt_keys - self.model.lost_keys) & in_scope:
            assert key in corrupt or key in lost, f"reconcile did not name the tampered {key}"
        for key in (lost | corrupt) - self.model.lost_keys - self.model.corrupt_keys:
            owner = _org_of_key(key)
            kind = key.split("/")[0]
            assert owner is not None, key
            assert (kind, owner) in self.dirty, f"reconcile named {key}, which nobody touched"
        assert not (orphans & pointers), orphans & pointers

    async def _pointer_keys(self) -> set[str]:
        async with self.store.sessions() as session:
            keys = set((await session.scalars(sa.select(m.ExecutionLogArchive.blob_key))).all())
            keys |= set((await session.scalars(sa.select(PhiAuditArchive.blob_key))).all())
            results = (
                await session.execute(
                    sa.select(m.Job.organization_id, m.Job.id, m.Job.created_at).join(
                        m.JobResultArchive, m.JobResultArchive.job_id == m.Job.id
                    )
                )
            ).all()
        codec = self.store.archives.codec
        keys |= {result_archive_key(org, job, at, codec) for org, job, at in results}
        return keys

    @rule(name=st.sampled_from(JOBS), data=st.data())
    def run_job(self, name: str, data: st.DataObject) -> None:
        self.operate(name, self._scope(name, data))

    def operate(self, name: str, org: uuid.UUID | None = None) -> None:
        """Run operator job ``name`` (for ``org``, or every organization) to completion."""
        report = self.run(self._job(name, org)())
        self._apply(name, org, certain=True)
        self._check_report(name, org, report)

    @rule(
        name=st.sampled_from(sorted(DELETING)),
        ops=st.integers(0, 6),
        after=st.booleans(),
        rerun=st.booleans(),
        data=st.data(),
    )
    def crash_job(self, name: str, ops: int, after: bool, rerun: bool, data: st.DataObject) -> None:
        """Kill a run at its ``ops``-th blob write or delete, or (``cancel``) at an await."""
        assert self.faulty is not None
        org = self._scope(name, data)
        cancel = data.draw(st.one_of(st.none(), st.integers(1, 400)), label="cancel after")
        report = None
        if cancel is None:
            self.faulty.arm(ops, after=after)
            try:
                report = self.run(self._job(name, org)())
            except SimulatedCrash:
                pass
            finally:
                self.faulty.disarm()
            crashed = self.faulty.tripped
        else:
            crashed = self.run(self._cancel_after(self._job(name, org)(), cancel))
        if crashed:  # the worker's process died: its memory and its connections with it
            if self.store.archives.cache is not None:
                self.store.archives.cache.clear()
            self.run(self.store.engine.dispose())
        self._apply(name, org, certain=not crashed)
        if report is not None and not crashed:  # it never reached the fault: a completed run
            self._check_report(name, org, report)
        type(self).stats["crashes"] = type(self).stats.get("crashes", 0) + crashed
        if rerun:
            report = self.run(self._job(name, org)())
            self._apply(name, org, certain=True)
            self._check_report(name, org, report)

    async def _cancel_after(self, job: Awaitable[Any], turns: int) -> bool:
        """Run ``job`` and cancel it after ``turns`` milliseconds; True if it was cancelled.

        Wall time decides where the cancellation lands (any await of the run, database
        or blob), so a replay may crash it elsewhere: the model treats every crash alike.
        """
        task = asyncio.ensure_future(job)
        await asyncio.wait({task}, timeout=turns / 1000)
        if task.done():
            task.result()
            return False
        task.cancel()
        try:
            await task
        except asyncio.CancelledError:
            return True
        # It returned although cancelled: a step caught the cancellation (or what it
        # turned into) and the run went on; what that step was doing is uncertain.
        stats = type(self).stats
        stats["cancellations absorbed"] = stats.get("cancellations absorbed", 0) + 1
        return True

    @rule(first=st.sampled_from(JOBS), second=st.sampled_from(JOBS), data=st.data())
    def run_side_by_side(self, first: str, second: str, data: st.DataObject) -> None:
        orgs = [self._scope(first, data), self._scope(second, data)]

        async def both() -> list[Any]:
            return list(
                await asyncio.gather(self._job(first, orgs[0])(), self._job(second, orgs[1])())
            )

        reports = self.run(both())
        deleting = {first, second} & {"log_retention", "audit_retention"}
        for name, org in zip([first, second], orgs, strict=True):
            self._apply(name, org, certain=not deleting or name not in DELETING)
        for name, org, report in zip([first, second], orgs, reports, strict=True):
            if name in {"verify", "reconcile"} and ({first, second} & DELETING):
                continue  # a snapshot in the middle of a deletion: its own checks cover it
            if name in DELETING and len({first, second} & DELETING) > 0:
                continue  # overlapping workers may set aside what the other one took
            self._check_report(name, org, report)

    # -- deleting and tampering ---------------------------------------------------------

    @precondition(lambda self: bool(self._live_jobs()))
    @rule(data=st.data())
    def delete_job(self, data: st.DataObject) -> None:
        job = data.draw(st.sampled_from(self._live_jobs()), label="job")
        org = self.model.jobs[job].org

        async def go() -> None:
            async with self.store.unit(org) as uow:
                await uow.jobs.delete(job)

        try:
            self.run(go())
        except ArchiveError:
            # A chunk it shares cannot be read to rewrite: nothing may have changed.
            assert any(line.taint for line in self.model.lines.values() if line.org == org) or (
                ("logs", org) in self.dirty
            )
            return
        self.model.delete_job(job)

    @rule(data=st.data())
    def another_organization_sees_nothing(self, data: st.DataObject) -> None:
        jobs = self._live_jobs()
        if not jobs:
            return
        job = data.draw(st.sampled_from(jobs), label="job")
        owner = self.model.jobs[job].org
        others = [o for o in self.model.orgs if o != owner]
        other = data.draw(st.sampled_from(sorted(others, key=str)), label="other")

        async def go() -> None:
            async with self.store.unit(other) as uow:
                for read in (
                    lambda: uow.logs.for_job(job),
                    lambda: uow.results.detail(job),
                    lambda: uow.rag.get(job),
                ):
                    try:
                        await read()
                    except NotFound:
                        continue
                    raise AssertionError(f"organization {other} read job {job} of {owner}")

        self.run(go())

    async def _archive_rows(self) -> list[tuple[str, str, uuid.UUID]]:
        async with self.store.sessions() as session:
            rows = [
                ("logs", key, org)
                for key, org in (
                    await session.execute(
                        sa.select(
                            m.ExecutionLogArchive.blob_key, m.ExecutionLogArchive.organization_id
                        )
                    )
                ).all()
            ]
            rows += [
                ("audit", key, org)
                for key, org in (
                    await session.execute(
                        sa.select(PhiAuditArchive.blob_key, PhiAuditArchive.organization_id)
                    )
                ).all()
            ]
        return sorted(rows)

    @rule(data=st.data(), lose=st.booleans())
    def tamper_with_a_blob(self, data: st.DataObject, lose: bool) -> None:
        """Overwrite (or delete) an archive blob behind execstore's back."""
        touched = self.model.lost_keys | self.model.corrupt_keys
        rows = [r for r in self.run(self._archive_rows()) if r[1] not in touched]
        results = [(j.id, j.org) for j in self.model.jobs.values() if j.result and not j.deleted]
        choices: list[tuple[str, str, uuid.UUID]] = list(rows)
        for job, org in results:
            if self.model.jobs[job].result_taint is None:
                choices.append(("results", str(job), org))
        if not choices:
            return
        kind, key, org = data.draw(st.sampled_from(choices), label="archive")
        if kind == "results":
            job = uuid.UUID(key)
            key = self.run(self._result_key(job))
        assert self.faulty is not None
        assert self.blob_dir is not None
        inner = self.faulty.inner
        payload = self.run(inner.get(key))
        if kind == "logs":
            messages = {
                json.loads(line)["message"]
                for line in gzip.decompress(payload).split(b"\n")
                if line
            }
            for message in messages:
                self.model.lines[message].taint = key
        elif kind == "audit":
            self.model.orgs[org].audit_taint = "lost" if lose else "corrupt"
        else:
            self.model.jobs[uuid.UUID(key.split("/")[4])].result_taint = key
        if lose:
            self.run(inner.delete(key))
            self.model.lost_keys.add(key)
        else:
            path = self.blob_dir / key
            assert path.is_file(), path
            path.write_bytes(gzip.compress(b'{"forged": true}\n'))
            self.model.corrupt_keys.add(key)

    async def _result_key(self, job: uuid.UUID) -> str:
        org = self.model.jobs[job].org
        return result_archive_key(
            org, job, self.model.jobs[job].created_at, self.store.archives.codec
        )

    @rule(data=st.data())
    def tamper_with_an_audit_row(self, data: st.DataObject) -> None:
        org = self._org(data)

        async def hot_seqs() -> list[int]:
            async with self.store.sessions() as session:
                return list(
                    (
                        await session.scalars(
                            sa.text(
                                "SELECT seq FROM phi_audit_log WHERE organization_id = :org "
                                "ORDER BY seq"
                            ),
                            {"org": org},
                        )
                    ).all()
                )

        seqs = self.run(hot_seqs())
        if not seqs:
            return
        seq = data.draw(st.sampled_from(seqs), label="seq")

        async def edit() -> None:
            async with self.store.engine.begin() as conn:
                await conn.exec_driver_sql("SET LOCAL session_replication_role = replica")
                await conn.execute(
                    sa.text(
                        "UPDATE phi_audit_log SET resource_id = 'forged' "
                        "WHERE organization_id = :org AND seq = :seq"
                    ),
                    {"org": org, "seq": seq},
                )

        self.run(edit())
        self.model.orgs[org].audit_taint = f"edited record {seq}"
        for record in self.model.records.values():
            if record.org == org and record.seq == seq:
                record.archived = MAYBE  # it can never be archived now; nor deleted
        self.tampered_seqs.add((org, seq))

    # -- reads --------------------------------------------------------------------------

    @rule(data=st.data())
    def compliance_export(self, data: st.DataObject) -> None:
        org = self._org(data)
        if self._audit_excused(org):
            return
        times = sorted({r.at for r in self.model.records.values() if r.org == org})
        edges = [t + d for t in times for d in (-TICK, dt.timedelta(0), TICK)] or [self.now]
        bound = st.one_of(st.none(), st.sampled_from(edges))
        since, until = data.draw(bound, label="since"), data.draw(bound, label="until")
        if since is not None and until is not None and since > until:
            since, until = until, since
        self.export_matches(org, since, until, data.draw(st.sampled_from(ZONES)))

    def export_matches(
        self,
        org: uuid.UUID,
        since: dt.datetime | None,
        until: dt.datetime | None,
        zone: dt.tzinfo = UTC,
    ) -> None:
        """The compliance export of ``org`` over ``[since, until)`` is the model's records."""

        async def go() -> list[dict[str, Any]]:
            async with self.store.unit(org) as uow:
                return [
                    json.loads(line)
                    async for line in uow.audit.export(
                        since and since.astimezone(zone), until and until.astimezone(zone)
                    )
                ]

        lines = self.run(go())
        got = [line["id"] for line in lines]
        assert len(got) == len(set(got)), "an export repeated a record"
        window = [
            r
            for r in self.model.records.values()
            if r.org == org and (since is None or r.at >= since) and (until is None or r.at < until)
        ]
        self._observe_records(window, {uuid.UUID(i) for i in got})
        expected = [str(r.id) for r in sorted(window, key=lambda r: r.seq) if r.fate != GONE]
        assert got == expected, (since, until, got, expected)

    def _observe_records(self, records: list[Record], seen: set[uuid.UUID]) -> None:
        for record in records:
            if record.id in seen:
                assert record.fate != GONE, f"audit record {record.seq} came back"
            elif record.fate == LIVE:
                raise AssertionError(
                    f"audit record {record.seq} of {record.org} at {record.at} is gone at "
                    f"{self.now} (retention {self.audit_days} days, archived {record.archived})"
                )
            else:
                record.fate = GONE

    @rule(data=st.data())
    def rag_window(self, data: st.DataObject) -> None:
        """``rule_usage`` and ``top_rules`` over ``[since, until)`` equal the model's jobs."""
        org = self._org(data)
        jobs = [j for j in self.model.jobs.values() if j.org == org and not j.deleted and j.rag_at]
        times = sorted({j.rag_at for j in jobs if j.rag_at is not None}) or [self.now]
        edges = [t + d for t in times for d in (-MILLI, dt.timedelta(0), MILLI)]
        since = data.draw(st.sampled_from(edges), label="since")
        until = data.draw(st.sampled_from(edges), label="until")
        if since > until:
            since, until = until, since
        zone = data.draw(st.sampled_from(ZONES))

        async def go() -> tuple[list[uuid.UUID], int]:
            async with self.store.unit(org) as uow:
                found: list[uuid.UUID] = []
                cursor = None
                while True:
                    page = await uow.rag.rule_usage(
                        SHARED_RULE,
                        since.astimezone(zone),
                        until.astimezone(zone),
                        limit=2,
                        cursor=cursor,
                    )
                    found += [item.job_id for item in page.items]
                    if page.next_cursor is None:
                        break
                    cursor = page.next_cursor
                top = await uow.rag.top_rules(since.astimezone(zone), until.astimezone(zone), 50)
            shared = [t.retrieved for t in top if t.rule_id == SHARED_RULE]
            return found, (shared[0] if shared else 0)

        found, counted = self.run(go())
        inside = sorted(
            (j for j in jobs if j.rag_at is not None and since <= j.rag_at < until),
            key=lambda j: (j.rag_at, j.id),
        )
        assert found == [j.id for j in inside], (since, until, found, inside)
        assert counted == len(inside)

    # -- invariants ---------------------------------------------------------------------

    def check(self) -> None:
        """Every invariant, now (what Hypothesis runs after each step)."""
        self.every_log_line_exactly_once()
        self.every_audit_record_exactly_once()
        self.results_and_rag_until_their_job_goes()

    @invariant()
    def count_step(self) -> None:
        type(self).stats["steps"] += 1

    @invariant()
    def every_log_line_exactly_once(self) -> None:
        if self.store is None:
            return
        self.run(self._check_logs())

    async def _check_logs(self) -> None:
        pointers = await self._pointer_keys()
        for line in self.model.lines.values():
            if line.taint is not None and line.taint not in pointers:
                line.taint = None  # its chunk was rewritten or deleted
        hot = await self._hot_messages()
        for job in self.model.jobs.values():
            expected = [line for line in self.model.lines.values() if line.job == job.id]
            async with self.store.unit(job.org) as uow:
                if job.deleted:
                    try:
                        await uow.logs.for_job(job.id)
                    except NotFound:
                        continue
                    raise AssertionError(f"the deleted job {job.id} still has a log")
                try:
                    entries = await self._all_lines(uow, job.id)
                except ArchiveError:
                    assert any(line.taint for line in expected) or (
                        ("logs", job.org) in self.dirty
                    ), f"job {job.id}: an archive error with nothing tampered"
                    continue
            seen: dict[str, Any] = {}
            for entry in entries:
                assert entry.message not in seen, f"line {entry.message} read twice"
                seen[entry.message] = entry
            assert set(seen) <= set(self.model.lines), set(seen) - set(self.model.lines)
            for line in expected:
                if line.message in seen:
                    assert line.fate != GONE, f"line {line.message} at {line.at} came back"
                    assert seen[line.message].timestamp == line.at
                elif line.fate == LIVE:
                    raise AssertionError(
                        f"line {line.message} at {line.at} of {line.org} is gone at {self.now} "
                        f"(retention {self.model.orgs[line.org].log_days} days, "
                        f"archived {line.archived})"
                    )
                else:
                    line.fate = GONE
                if line.fate != GONE and line.archived == NO:
                    assert line.message in hot, f"line {line.message} left the hot table early"
                if line.archived == YES:
                    assert line.message not in hot, (
                        f"line {line.message} at {line.at} still hot at {self.now}"
                    )
            for message, entry in seen.items():
                assert self.model.lines[message].job == job.id, entry

    async def _hot_messages(self) -> set[str]:
        async with self.store.sessions() as session:
            return set(
                (
                    await session.scalars(sa.text("SELECT message FROM execution_log_partitioned"))
                ).all()
            )

    async def _all_lines(self, uow: Any, job: uuid.UUID) -> list[Any]:
        entries: list[Any] = []
        cursor = None
        while True:
            page = await uow.logs.for_job(job, cursor=cursor, limit=50)
            entries += page.items
            if page.next_cursor is None:
                return entries
            cursor = page.next_cursor

    @invariant()
    def every_audit_record_exactly_once(self) -> None:
        if self.store is None:
            return
        self.run(self._check_audit())

    async def _check_audit(self) -> None:
        async with self.store.sessions() as session:
            hot = {
                (org, seq)
                for org, seq in (
                    await session.execute(sa.text("SELECT organization_id, seq FROM phi_audit_log"))
                ).all()
            }
        for org in self.model.orgs.values():
            async with self.store.unit(org.id) as uow:
                try:
                    found = await self._all_records(uow)
                except ArchiveError:
                    assert self._audit_excused(org.id), f"{org.id}: archive error, untouched"
                    continue
            ids = [r.id for r in found]
            assert len(ids) == len(set(ids)), "a query repeated a record"
            assert [r.seq for r in found] == sorted(r.seq for r in found)
            assert all(r.organization_id == org.id for r in found)
            mine = [r for r in self.model.records.values() if r.org == org.id]
            assert {r.id for r in found} <= {r.id for r in mine}
            self._observe_records(mine, set(ids))
            by_id = {r.id: r for r in found}
            for record in mine:
                got = by_id.get(record.id)
                if got is not None:
                    assert (got.seq, got.created_at) == (record.seq, record.at)
                if record.fate != GONE and record.archived == NO:
                    assert (org.id, record.seq) in hot, f"record {record.seq} left early"
                if record.archived == YES:
                    assert (org.id, record.seq) not in hot, (
                        f"record {record.seq} at {record.at} still hot at {self.now}"
                    )

    async def _all_records(self, uow: Any) -> list[Any]:
        found: list[Any] = []
        cursor = None
        while True:
            page = await uow.audit.query(cursor=cursor, limit=50)
            found += page.items
            if page.next_cursor is None:
                return found
            cursor = page.next_cursor

    @invariant()
    def results_and_rag_until_their_job_goes(self) -> None:
        if self.store is None:
            return
        self.run(self._check_jobs())

    async def _check_jobs(self) -> None:
        for job in self.model.jobs.values():
            if job.deleted:
                continue
            async with self.store.unit(job.org) as uow:
                try:
                    detail = await uow.results.detail(job.id)
                except NotFound:
                    assert job.result is None, f"job {job.id}: its result is not found"
                except ArchiveError:
                    assert job.result_taint is not None, f"job {job.id}: result unreadable"
                else:
                    assert job.result is not None, f"job {job.id}: a result it never saved"
                    assert detail.output == job.result
                context = await uow.rag.find(job.id)
                if job.rag is None:
                    assert context is None
                else:
                    assert context is not None
                    assert context.model_dump() == job.rag


def _month_start_before(edge: dt.datetime) -> dt.datetime:
    """The first instant of the UTC month before the one starting at ``edge``."""
    earlier = edge - dt.timedelta(days=1)
    return dt.datetime(earlier.year, earlier.month, 1, tzinfo=UTC)
