"""The verifier's hot-row path: pages fetched ahead, rows checked in chunks, text columns."""

from __future__ import annotations

import asyncio
import datetime as dt
import uuid
from typing import Any

import pytest
import sqlalchemy as sa
from sqlalchemy.ext.asyncio import create_async_engine
from sqlalchemy.pool import NullPool

from execstore.audit import checkpoint_organizations, verify_audit
from execstore.audit import verify as verify_module
from execstore.audit.catalog import AuditState, state_for
from execstore.audit.reader import Renderer, fetch_hot
from execstore.audit.snapshot import SnapshotReader
from execstore.audit.writer import append, prepare
from execstore.schema.audit import PhiAuditCheckpoint
from support.timeline import TICK
from support.waiting import wait_until

from .conftest import access, execute

ORG = "organization_id = :org"


def _varied(i: int) -> Any:
    """Accesses that use every column: ids or not, IPv4, IPv6, no source, no details."""
    sources = ["10.20.30.40", "2001:db8::7", None]
    return access(
        i,
        claim_id=uuid.uuid4() if i % 2 else None,
        job_id=uuid.uuid4() if i % 3 else None,
        actor_id=None if i % 5 == 4 else uuid.uuid4(),
        purpose=None if i % 4 == 1 else "payment",
        user_agent=None if i % 6 == 5 else "ClaimBot/7.3",
        source_ip=sources[i % 3],
        patient_ref=None if i % 7 == 6 else f'MRN "{i}"\n\\',
        details=None if i % 8 == 7 else {"note": f"check {i}", "é": ["\u2028", i]},
    )


async def _records(store: Any, org: uuid.UUID, count: int) -> None:
    async with store.unit(org) as uow:
        await uow.audit.record_many([_varied(i) for i in range(count)])


async def _legacy_source(store: Any, org: uuid.UUID, source: str) -> None:
    """A record whose source is not an IP address (as legacy rows have): a catalog id."""
    async with store.sessions() as session:
        codec = await state_for(store.sessions).codec(session, org)
    pending = prepare(access(50, source_ip=None), codec)
    pending.ip_text = source
    async with store.sessions() as session, session.begin():
        await append(session, org, [pending], AuditState())


async def _problem(store: Any, org: uuid.UUID) -> Any:
    report = await verify_audit(store.sessions, store.archives, organization_id=org)
    [result] = report.details["organizations"]
    return result


@pytest.fixture
def small_pages(monkeypatch: pytest.MonkeyPatch) -> None:
    """Pages of 7 rows checked 3 at a time, so chains cross pages and chunks."""
    monkeypatch.setattr(verify_module, "_PAGE", 7)
    monkeypatch.setattr(verify_module, "_CHUNK", 3)


async def test_text_columns_render_the_same_lines(store: Any, org: uuid.UUID) -> None:
    await _records(store, org, 23)
    await _legacy_source(store, org, "gateway-7 (legacy)")
    async with store.sessions() as session:
        plain = await fetch_hot(session, org, after=0)
        text = await fetch_hot(session, org, after=0, as_text=True)
        renderer = Renderer(AuditState(), org)
        await renderer.load(session, plain)
    from_objects: list[bytes] = []
    from_text: list[bytes] = []
    renderer.lines(plain, from_objects)
    renderer.lines(text, from_text)
    assert len(from_text) == 24
    assert from_text == from_objects
    assert [renderer.line(row) for row in plain] == from_objects
    assert b'"source_ip":"2001:db8::7"' in from_text[1]
    assert b'"source_ip":null' in from_text[2]
    assert b'"source_ip":"gateway-7 (legacy)"' in from_text[23]
    assert b'"details":null}' in from_text[7]
    assert b'"claim_id":null' in from_text[0]
    assert b'"job_id":null' in from_text[0]
    assert b'"actor_id":null' in from_text[4]


async def test_a_chain_across_pages_and_chunks_verifies(
    store: Any, org: uuid.UUID, small_pages: None
) -> None:
    await _records(store, org, 23)
    result = await _problem(store, org)
    assert result.problem is None
    assert (result.records, result.first_seq, result.last_seq) == (23, 1, 23)


@pytest.mark.parametrize("seq", [2, 7, 8, 16])
async def test_an_edit_on_any_page_is_named(
    store: Any, org: uuid.UUID, small_pages: None, seq: int
) -> None:
    await _records(store, org, 23)
    await execute(
        store,
        f"UPDATE phi_audit_log SET resource_id = 'clm_forged' WHERE {ORG} AND seq = :seq",
        org=org,
        seq=seq,
    )
    result = await _problem(store, org)
    assert (result.problem.seq, result.problem.kind) == (seq, "edited")


async def test_a_row_that_cannot_be_rendered_is_named_after_earlier_edits(
    store: Any, org: uuid.UUID, small_pages: None
) -> None:
    await _records(store, org, 23)
    # Record 17 names a catalog entry that does not exist: it cannot be rendered.
    await execute(store, f"UPDATE phi_audit_log SET action = -5 WHERE {ORG} AND seq = 17", org=org)
    result = await _problem(store, org)
    assert (result.problem.seq, result.problem.kind) == (17, "edited")
    assert "cannot be rendered" in result.problem.message
    # An edit earlier in the same chunk (16..18) is the first bad record.
    await execute(
        store,
        f"UPDATE phi_audit_log SET patient_ref = 'MRN-x' WHERE {ORG} AND seq = 16",
        org=org,
    )
    assert (await _problem(store, org)).problem.seq == 16
    # A deletion before it in the chunk is named before the unrenderable row.
    await execute(store, f"DELETE FROM phi_audit_log WHERE {ORG} AND seq = 16", org=org)
    result = await _problem(store, org)
    assert (result.problem.seq, result.problem.kind) == (16, "missing")


async def test_details_that_do_not_decode_are_named(
    store: Any, org: uuid.UUID, small_pages: None
) -> None:
    await _records(store, org, 12)
    await execute(
        store,
        f"UPDATE phi_audit_log SET details = :d, dictionary = -2 WHERE {ORG} AND seq = 10",
        org=org,
        d=b"not a zstd frame",
    )
    result = await _problem(store, org)
    assert (result.problem.seq, result.problem.kind) == (10, "edited")


async def test_stopping_early_leaves_the_next_organization_verifiable(
    store: Any, org: uuid.UUID, small_pages: None
) -> None:
    other = uuid.uuid4()
    await _records(store, org, 23)
    await _records(store, other, 23)
    first, second = sorted([org, other], key=str)
    # The first organization fails on its first page while the second page is in flight.
    await execute(
        store,
        f"UPDATE phi_audit_log SET resource_id = 'x' WHERE {ORG} AND seq = 3",
        org=first,
    )
    report = await verify_audit(store.sessions, store.archives)
    found = {o.organization_id: o for o in report.details["organizations"]}
    assert found[first].problem is not None
    assert found[first].problem.seq == 3
    assert found[second].ok
    assert found[second].records == 23


@pytest.mark.postgres
@pytest.mark.parametrize("backend", ["postgres"], indirect=True)
async def test_a_changed_address_mask_is_named(store: Any, org: uuid.UUID) -> None:
    await _records(store, org, 6)
    # 10.20.30.40 -> 10.20.30.40/24: the same address text, another value.
    await execute(
        store,
        f"UPDATE phi_audit_log SET source_ip = '10.20.30.40/24' WHERE {ORG} AND seq = 1",
        org=org,
    )
    result = await _problem(store, org)
    assert (result.problem.seq, result.problem.kind) == (1, "edited")


async def test_records_written_while_verifying_wait_for_the_next_run(
    store: Any, org: uuid.UUID, monkeypatch: pytest.MonkeyPatch
) -> None:
    await _records(store, org, 10)
    real = SnapshotReader.hot
    wrote: list[int] = []

    async def write_first(reader: SnapshotReader, of: uuid.UUID, **kwargs: Any) -> Any:
        if not wrote:  # a writer commits after the verifier read the chain head
            async with store.unit(org) as uow:
                wrote.append((await uow.audit.record(access(99))).seq or 0)
        return await real(reader, of, **kwargs)

    monkeypatch.setattr(SnapshotReader, "hot", write_first)
    result = await _problem(store, org)
    assert wrote
    assert result.problem is None, result.problem
    assert result.last_seq == 10
    monkeypatch.setattr(SnapshotReader, "hot", real)
    result = await _problem(store, org)
    assert result.problem is None
    assert result.last_seq == 11


async def test_a_checkpoint_written_during_a_run_is_not_taken_for_deleted_records(
    store: Any, org: uuid.UUID, monkeypatch: pytest.MonkeyPatch
) -> None:
    """An organization verified later sees its new checkpoint and its new records."""
    other = uuid.uuid4()
    await _records(store, org, 10)
    await _records(store, other, 10)
    second = max([org, other], key=str)
    real = verify_module.read_evidence
    wrote: list[int] = []

    async def write_then_list(archives: Any, of: uuid.UUID) -> Any:
        if of == second and not wrote:  # a record and its checkpoint, just before listing
            async with store.unit(second) as uow:
                wrote.append((await uow.audit.record(access(99))).seq or 0)
            await checkpoint_organizations(store.sessions, store.archives, organization_id=second)
        return await real(archives, of)

    monkeypatch.setattr(verify_module, "read_evidence", write_then_list)
    report = await verify_audit(store.sessions, store.archives)
    found = {o.organization_id: o for o in report.details["organizations"]}
    assert wrote == [11]
    assert found[org].ok, found[org].problem
    assert found[other].ok, found[other].problem
    assert (found[second].last_seq, found[second].newest_checkpoint_seq) == (11, 11)


async def test_verification_leaves_no_fetch_running_behind_it(
    store: Any, org: uuid.UUID, small_pages: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A chain that fails on its first page still waits for the page fetched ahead.

    The page fetched ahead arrives only once someone waits for it (at the latest: never),
    so a verifier that stopped without waiting would return with it still outstanding.
    """
    await _records(store, org, 23)
    await execute(
        store, f"UPDATE phi_audit_log SET resource_id = 'x' WHERE {ORG} AND seq = 2", org=org
    )
    real = SnapshotReader.hot
    calls = {"started": 0, "finished": 0}
    awaited = asyncio.Event()
    fetches: list[asyncio.Task[None]] = []

    class Awaited(asyncio.Future[Any]):
        """A future that notices being awaited (``await`` and ``gather`` both add a callback)."""

        def add_done_callback(self, fn: Any, *, context: Any = None) -> None:
            awaited.set()
            super().add_done_callback(fn, context=context)

    async def counted(reader: SnapshotReader, of: uuid.UUID, after: int, **kwargs: Any) -> Any:
        try:
            return await real(reader, of, after=after, **kwargs)
        finally:
            calls["finished"] += 1

    def late_ahead(reader: SnapshotReader, of: uuid.UUID, *, after: int, **kwargs: Any) -> Any:
        calls["started"] += 1
        if not after:
            return counted(reader, of, after, **kwargs)
        page: Awaited = Awaited()

        async def fetch_once_awaited() -> None:
            await awaited.wait()
            try:
                page.set_result(await counted(reader, of, after, **kwargs))
            except Exception as exc:
                page.set_exception(exc)

        fetches.append(asyncio.create_task(fetch_once_awaited()))
        return page

    monkeypatch.setattr(SnapshotReader, "hot", late_ahead)
    try:
        result = await _problem(store, org)
        finished_when_verify_returned = calls["finished"]
    finally:
        awaited.set()  # let a fetch left behind end, whatever happened
        await asyncio.gather(*fetches, return_exceptions=True)
    assert result.problem is not None
    assert result.problem.seq == 2
    assert calls["started"] == 2
    assert finished_when_verify_returned == 2  # nothing left using the session afterwards


async def test_since_starts_from_the_last_checkpoint_before_it(store: Any, org: uuid.UUID) -> None:
    await _records(store, org, 6)
    await checkpoint_organizations(store.sessions, store.archives, organization_id=org)
    async with store.sessions() as session:
        checkpointed = await session.scalar(
            sa.select(PhiAuditCheckpoint.created_at).where(
                PhiAuditCheckpoint.organization_id == org, PhiAuditCheckpoint.seq == 6
            )
        )
    assert checkpointed is not None
    between = checkpointed + TICK  # after checkpoint 6, before records 7..10
    await wait_until(lambda: dt.datetime.now(dt.UTC) > between, "the clock passing checkpoint 6")
    async with store.unit(org) as uow:
        await uow.audit.record_many([_varied(i) for i in range(6, 10)])
    await execute(
        store, f"UPDATE phi_audit_log SET resource_id = 'x' WHERE {ORG} AND seq = 2", org=org
    )
    whole = await _problem(store, org)
    assert (whole.problem.seq, whole.problem.kind) == (2, "edited")
    report = await verify_audit(store.sessions, store.archives, organization_id=org, since=between)
    [recent] = report.details["organizations"]
    # The chain resumes from checkpoint 6's hash: record 2 is not read, 7..10 are checked.
    assert recent.problem is None, recent.problem
    assert (recent.first_seq, recent.last_seq, recent.records) == (7, 10, 4)


@pytest.mark.postgres
@pytest.mark.parametrize("backend", ["postgres"], indirect=True)
async def test_verification_leaves_no_transaction_open(
    store: Any, org: uuid.UUID, small_pages: None
) -> None:
    """Each organization's snapshot is its own transaction on the driver: all are ended."""
    other = uuid.uuid4()
    await _records(store, org, 23)
    await _records(store, other, 23)
    await execute(
        store, f"UPDATE phi_audit_log SET resource_id = 'x' WHERE {ORG} AND seq = 3", org=org
    )
    report = await verify_audit(store.sessions, store.archives)
    found = {o.organization_id: o for o in report.details["organizations"]}
    assert found[org].problem is not None
    assert found[other].ok
    # Asked on a connection of its own: a pooled one could be the one left in a transaction.
    outside = create_async_engine(store.settings.database_url, poolclass=NullPool)
    try:
        async with outside.connect() as conn:
            in_transaction = await conn.scalar(
                sa.text(
                    "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() "
                    "AND pid <> pg_backend_pid() AND state LIKE 'idle in transaction%'"
                )
            )
    finally:
        await outside.dispose()
    assert in_transaction == 0
