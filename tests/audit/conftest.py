"""Helpers for the audit tests: realistic accesses, tampering that bypasses the trigger."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection

from execstore.audit import PhiAccess
from execstore.schema.audit import append_only_ddl, drop_append_only_ddl

ACTOR = uuid.UUID("5f1c8a9e-2b3d-4c5e-8f70-123456789abc")


def access(i: int = 0, **overrides: Any) -> PhiAccess:
    """A PHI access as a claim processor would report it."""
    values: dict[str, Any] = {
        "action": "view" if i % 3 else "export",
        "resource_type": "claim",
        "resource_id": f"clm_{i:06d}",
        "actor_id": ACTOR,
        "patient_ref": f"MRN-{i % 7:04d}",
        "purpose": "payment",
        "source_ip": "10.20.30.40" if i % 2 else "2001:db8::7",
        "user_agent": "Mozilla/5.0 (Windows NT 10.0; Win64; x64) ClaimBot/7.3",
        "details": {
            "fields": ["dob", "memberId", "diagnosis"],
            "payer": {"name": "Aetna", "id": f"P{i % 5}"},
            "note": f"eligibility check {i}",
        },
    }
    values.update(overrides)
    return PhiAccess(**values)


@asynccontextmanager
async def tampering(store: Any) -> AsyncIterator[AsyncConnection]:
    """A connection on which the append-only trigger is off (as an attacker with DDL would)."""
    dialect = store.engine.dialect.name
    async with store.engine.begin() as conn:
        if dialect == "postgresql":
            await conn.exec_driver_sql("SET LOCAL session_replication_role = replica")
        else:
            for statement in drop_append_only_ddl("sqlite"):
                await conn.exec_driver_sql(statement)
        yield conn
        if dialect == "sqlite":
            for statement in append_only_ddl("sqlite"):
                await conn.exec_driver_sql(statement)


async def hot_rows(store: Any, org: uuid.UUID) -> list[sa.Row[Any]]:
    """Every hot row of ``org`` in seq order."""
    async with store.engine.connect() as conn:
        result = await conn.execute(
            sa.text("SELECT * FROM phi_audit_log WHERE organization_id = :org ORDER BY seq"),
            {"org": org if store.engine.dialect.name == "postgresql" else str(org)},
        )
        return list(result.all())


def org_param(store: Any, org: uuid.UUID) -> Any:
    """``org`` as the backend binds it in raw SQL."""
    return org if store.engine.dialect.name == "postgresql" else str(org)


async def rechain(store: Any, org: uuid.UUID) -> None:
    """Recompute every link and the head from the rows as they are now (a careful attacker)."""
    from execstore.audit.catalog import state_for
    from execstore.audit.format import genesis, link_of
    from execstore.audit.reader import Renderer, fetch_hot

    async with store.sessions() as session:
        rows = await fetch_hot(session, org, after=0, limit=100_000)
        renderer = Renderer(state_for(store.sessions), org)
        await renderer.load(session, rows)
        lines = [(row[0], renderer.line(row)) for row in rows]
    digest = genesis(org)
    async with tampering(store) as conn:
        for seq, line in lines:
            digest = chain_step(digest, line)
            await conn.execute(
                sa.text(
                    "UPDATE phi_audit_log SET link = :link "
                    "WHERE organization_id = :org AND seq = :seq"
                ),
                {"link": link_of(digest), "org": org_param(store, org), "seq": seq},
            )
        await conn.execute(
            sa.text(
                "UPDATE phi_audit_chain_heads SET seq = :seq, hash = :hash "
                "WHERE organization_id = :org"
            ),
            {"seq": lines[-1][0], "hash": digest, "org": org_param(store, org)},
        )


def chain_step(previous: bytes, line: bytes) -> bytes:
    import hashlib

    return hashlib.sha256(previous + line).digest()


async def execute(store: Any, sql: str, **params: Any) -> None:
    """Run ``sql`` with the trigger off; ``org`` parameters are bound for the backend."""
    if "org" in params:
        params["org"] = org_param(store, params["org"])
    async with tampering(store) as conn:
        await conn.execute(sa.text(sql), params)
