"""Every kind of tampering is found, and the first bad record is named (both backends)."""

from __future__ import annotations

import uuid
from typing import Any

import sqlalchemy as sa

from execstore.audit import checkpoint_organizations, verify_audit

from .conftest import access, execute, org_param, rechain, tampering

RECORDS = 20
ORG = "organization_id = :org"


async def _chain(store: Any, org: uuid.UUID, count: int = RECORDS) -> None:
    async with store.unit(org) as uow:
        await uow.audit.record(access(0))  # claims the day's checkpoint: seq 1
        await uow.audit.record_many([access(i) for i in range(1, count)])
    await checkpoint_organizations(store.sessions, store.archives, organization_id=org)


async def _problem(store: Any, org: uuid.UUID) -> Any:
    report = await verify_audit(store.sessions, store.archives, organization_id=org)
    [result] = report.details["organizations"]
    return result.problem


async def test_an_untouched_chain_verifies(store: Any, org: uuid.UUID) -> None:
    await _chain(store, org)
    report = await verify_audit(store.sessions, store.archives, organization_id=org)
    assert not report.needs_attention
    [result] = report.details["organizations"]
    assert (result.records, result.first_seq, result.last_seq) == (RECORDS, 1, RECORDS)
    assert result.checkpoints_matched == 2  # the one the first write claimed, and the head


async def test_an_edited_record_is_named(store: Any, org: uuid.UUID) -> None:
    await _chain(store, org)
    await execute(
        store,
        f"UPDATE phi_audit_log SET resource_id = 'clm_forged' WHERE {ORG} AND seq = 7",
        org=org,
    )
    problem = await _problem(store, org)
    assert (problem.seq, problem.kind) == (7, "edited")


async def test_edited_details_and_catalog_entries_are_found(store: Any, org: uuid.UUID) -> None:
    await _chain(store, org)
    async with store.sessions() as session:
        old = (
            await session.execute(
                sa.text(f"SELECT details, dictionary FROM phi_audit_log WHERE {ORG} AND seq = 3"),
                {"org": org_param(store, org)},
            )
        ).one()
    await execute(
        store,
        f"UPDATE phi_audit_log SET details = :d, dictionary = 0 WHERE {ORG} AND seq = 3",
        org=org,
        d=b'{"note":"nothing to see"}',
    )
    assert (await _problem(store, org)).seq == 3
    await execute(
        store,
        f"UPDATE phi_audit_log SET details = :d, dictionary = :e WHERE {ORG} AND seq = 3",
        org=org,
        d=old[0],
        e=old[1],
    )
    assert await _problem(store, org) is None
    # Renaming what a catalog id stands for rewrites every record using it: the first shows.
    await execute(
        store,
        f"UPDATE phi_audit_catalog SET value = 'read-only' WHERE {ORG} AND kind = 1 "
        "AND value = 'export'",
        org=org,
    )
    problem = await _problem(store, org)
    assert (problem.seq, problem.kind) == (1, "edited")  # record 1 (i=0) is an export


async def test_a_deleted_record_is_named(store: Any, org: uuid.UUID) -> None:
    await _chain(store, org)
    await execute(store, f"DELETE FROM phi_audit_log WHERE {ORG} AND seq = 5", org=org)
    problem = await _problem(store, org)
    assert (problem.seq, problem.kind) == (5, "missing")


async def test_an_inserted_record_is_named(store: Any, org: uuid.UUID) -> None:
    await _chain(store, org)
    # Make room at seq 5 (highest first: the key is unique) and forge a record there.
    for seq in range(RECORDS, 4, -1):
        await execute(
            store,
            f"UPDATE phi_audit_log SET seq = seq + 1 WHERE {ORG} AND seq = :seq",
            org=org,
            seq=seq,
        )
    async with tampering(store) as conn:
        result = await conn.execute(sa.text("SELECT * FROM phi_audit_log LIMIT 0"))
        columns = list(result.keys())
        listed = ", ".join(c if c != "seq" else "5" for c in columns)
        await conn.execute(
            sa.text(
                f"INSERT INTO phi_audit_log ({', '.join(columns)}) "
                f"SELECT {listed} FROM phi_audit_log WHERE {ORG} AND seq = 4"
            ),
            {"org": org_param(store, org)},
        )
        await conn.execute(
            sa.text("UPDATE phi_audit_chain_heads SET seq = seq + 1 WHERE organization_id = :org"),
            {"org": org_param(store, org)},
        )
    problem = await _problem(store, org)
    assert (problem.seq, problem.kind) == (5, "edited")


async def test_a_record_appended_past_the_head_is_named(store: Any, org: uuid.UUID) -> None:
    await _chain(store, org)
    async with tampering(store) as conn:
        columns = list((await conn.execute(sa.text("SELECT * FROM phi_audit_log LIMIT 0"))).keys())
        listed = ", ".join(c if c != "seq" else str(RECORDS + 1) for c in columns)
        await conn.execute(
            sa.text(
                f"INSERT INTO phi_audit_log ({', '.join(columns)}) "
                f"SELECT {listed} FROM phi_audit_log WHERE {ORG} AND seq = {RECORDS}"
            ),
            {"org": org_param(store, org)},
        )
    problem = await _problem(store, org)
    assert problem.seq == RECORDS + 1


async def test_reordered_records_are_named(store: Any, org: uuid.UUID) -> None:
    await _chain(store, org)
    # Swap records 8 and 9 by renumbering them (their links stay as they were).
    for old, new in ((8, -1), (9, 8), (-1, 9)):
        await execute(
            store,
            f"UPDATE phi_audit_log SET seq = :new WHERE {ORG} AND seq = :old",
            org=org,
            old=old,
            new=new,
        )
    problem = await _problem(store, org)
    assert (problem.seq, problem.kind) == (8, "edited")


async def test_a_consistent_rewrite_is_caught_by_the_checkpoints(
    store: Any, org: uuid.UUID
) -> None:
    await _chain(store, org)
    await execute(
        store,
        f"UPDATE phi_audit_log SET resource_id = 'clm_forged' WHERE {ORG} AND seq = 3",
        org=org,
    )
    await rechain(store, org)  # every link and the head now agree with the forgery
    problem = await _problem(store, org)
    assert problem.kind == "rewritten"
    assert problem.seq == 2  # the rewrite lies after the last matching checkpoint (seq 1)
    assert "2..20" in problem.message


async def test_deleting_the_newest_records_consistently_is_caught(
    store: Any, org: uuid.UUID
) -> None:
    await _chain(store, org)
    await execute(store, f"DELETE FROM phi_audit_log WHERE {ORG} AND seq > 17", org=org)
    await rechain(store, org)  # the head now says 17, with the right hash
    problem = await _problem(store, org)
    assert (problem.seq, problem.kind) == (18, "missing")


async def test_dropping_a_whole_chain_is_caught(store: Any, org: uuid.UUID) -> None:
    await _chain(store, org)
    for table in ("phi_audit_log", "phi_audit_chain_heads", "phi_audit_checkpoints"):
        await execute(store, f"DELETE FROM {table} WHERE organization_id = :org", org=org)
    report = await verify_audit(store.sessions, store.archives)
    found = {o.organization_id: o for o in report.details["organizations"]}
    assert found[org].problem is not None
    assert found[org].problem.kind == "missing"


async def test_a_deleted_checkpoint_blob_is_reported(store: Any, org: uuid.UUID) -> None:
    await _chain(store, org)
    async with store.sessions() as session:
        key = await session.scalar(
            sa.text(f"SELECT blob_key FROM phi_audit_checkpoints WHERE {ORG} AND seq = 1"),
            {"org": org_param(store, org)},
        )
    assert await store.archives.delete(key)
    problem = await _problem(store, org)
    assert (problem.seq, problem.kind) == (1, "checkpoint_missing")
