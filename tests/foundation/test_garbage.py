"""Garbage in, a typed error out: every public read and write of a unit, on both backends.

Hypothesis calls each repository method with arguments drawn from valid values and from
garbage: wrong types, lone surrogates, NUL, huge and 64-bit-edge integers, NaN and
infinities, naive and far-off datetimes, deep nesting, foreign and unknown ids, cursors
that are random, altered or of another listing. What may come out is a documented
success or an :class:`~execstore.errors.ExecstoreError`; anything else fails the test.

A refused call must leave nothing behind, even when the caller catches the error and
carries on: the unit is then committed, and every table's row count, the rows of the
organizations in play and the blobs are compared with what they were before the call.
"""

from __future__ import annotations

import datetime as dt
import decimal
import inspect
import os
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from hypothesis import HealthCheck, Phase, event, given, settings
from hypothesis import strategies as st

from execstore import ExecStore, load_settings
from execstore.errors import DatabaseError, ExecstoreError
from execstore.logs import NewLogEntry
from execstore.metadata.listing import list_cursor
from execstore.migrations.runner import migrate
from execstore.pages import encode_cursor
from execstore.schema import models as m
from execstore.schema.base import Base
from execstore.schema.enums import ExecutionStatus, LogLevel
from support.postgres import PgServer, create_database, drop_database
from support.timeline import new_job, new_org

EXAMPLES = int(os.environ.get("EXECSTORE_GARBAGE_EXAMPLES", "120"))
"""Per test and backend: about 5 s on the reference machine. Set EXECSTORE_GARBAGE_EXAMPLES to
explore further: the examples are then drawn at random, not from the fixed sequence."""

WHEN = dt.datetime(2031, 3, 4, 5, 6, 7, tzinfo=dt.UTC)
CONTEXT = {
    "ragRetrievalTimeMs": 12,
    "totalRulesRetrieved": 1,
    "totalRulesUsed": 0,
    "averageRetrievalScore": 0.5,
    "rules": [{"ruleId": "R-1", "ruleType": "billing", "condition": "c", "action": "a"}],
}
OUTPUT = {"success": True, "stepResults": [{"stepIndex": 0, "success": True}]}
ACCESS = {"action": "view", "resource_type": "claim", "resource_id": "clm_1", "purpose": "payment"}
ACCESS_KEYS = [
    *ACCESS,
    "actor_id",
    "patient_ref",
    "claim_id",
    "job_id",
    "source_ip",
    "user_agent",
    "details",
    "unknown",
]
ENTRY_KEYS = ["message", "level", "stepIndex", "step_name", "metadata", "timestamp", "durationMs"]


def _nested(depth: int, leaf: Any, wrap: Callable[[Any], Any]) -> Any:
    value = leaf
    for _ in range(depth):
        value = wrap(value)
    return value


class _Weird:
    def __repr__(self) -> str:
        raise RuntimeError("a repr that fails")

    def __str__(self) -> str:
        raise RuntimeError("a str that fails")


SURROGATES = st.sampled_from(
    ["\ud800", "a\udfffb", "\ud83d", "é\udc00", "\x00\ud800", "\ud83d\ude00"]
)
DIRTY = st.one_of(
    SURROGATES,
    st.tuples(st.text(max_size=4), SURROGATES, st.text(max_size=4)).map("".join),
    st.sampled_from(["\x00", "a\x00b", "x" * 100_000, "é" * 9000, ""]),
)
"""Text no database stores as given: surrogates, NUL, far over any column's limit."""
HUGE = st.sampled_from(
    [2**31, -(2**31) - 1, 2**63, -(2**63) - 1, 2**64, 10**30, 10**5000, -(10**5000)]
)
ODD = st.sampled_from(
    [
        _nested(3000, 1, lambda v: [v]),
        _nested(3000, "x", lambda v: {"k": v}),
        float("nan"),
        float("inf"),
        -float("inf"),
        {"k": float("nan")},
        {1: "int key"},
        {None: 1},
        [object()],
        {1, 2},
        (1, "x"),
        frozenset(),
        decimal.Decimal("NaN"),
        decimal.Decimal("1e999999"),
        LogLevel.ERROR,
        ExecutionStatus.FAILED,
        b"\xff\xfe",
        bytearray(b"x"),
        object(),
        _Weird(),
        type,
        print,
        Ellipsis,
        "x" * 100_000,
        "",
        " ",
        "\x00",
        dt.date(2031, 3, 4),
        dt.time(1, 2),
        dt.timedelta(days=-1),
        dt.datetime(2031, 3, 4),  # naive
        dt.datetime(1, 1, 1, tzinfo=dt.UTC),
        dt.datetime(9999, 12, 31, 23, 59, 59, 999999, tzinfo=dt.UTC),
        dt.datetime(2031, 3, 4, tzinfo=dt.timezone(dt.timedelta(hours=-14))),
    ]
)
CURSORS = st.one_of(
    st.text(max_size=40),
    st.text(max_size=40).map(lambda t: "c1." + t),
    st.binary(max_size=60).map(lambda b: "c1." + b.hex()),
    st.sampled_from(
        [
            "c1.",
            "v1.99999999999999999999999.1",
            "v1.-1.-1",
            "m1" + "A" * 32,
            list_cursor(WHEN, uuid.uuid4()),  # of the metadata listing
            encode_cursor("logs", (WHEN, 2**63 - 1)),
            encode_cursor("audit", (-(2**63),)),
            encode_cursor("rule_usage", (dt.datetime(1, 1, 1, tzinfo=dt.UTC), uuid.uuid4())),
            encode_cursor(
                "executions", (dt.datetime(9999, 12, 31, tzinfo=dt.UTC), uuid.UUID(int=0))
            ),
        ]
    ),
)


@dataclass
class World:
    org: uuid.UUID
    workflow: uuid.UUID
    job: uuid.UUID
    """Has metadata, a result, a RAG context, log lines and audit records."""
    bare: uuid.UUID
    """Has nothing but the job row."""
    other_org: uuid.UUID
    other_job: uuid.UUID


def garbage(world: World) -> st.SearchStrategy[Any]:
    return st.one_of(
        st.none(),
        st.booleans(),
        st.integers(),
        HUGE,
        st.floats(),
        st.text(max_size=20),
        SURROGATES,
        st.binary(max_size=10),
        st.uuids(),
        st.sampled_from([world.other_job, world.other_org, world.org, world.workflow]),
        st.datetimes(timezones=st.sampled_from([None, dt.UTC])),
        ODD,
        CURSORS,
        st.lists(st.integers() | st.text(max_size=5) | SURROGATES, max_size=3),
        st.dictionaries(st.text(max_size=5), st.integers() | st.none() | SURROGATES, max_size=3),
    )


def specs(world: World) -> dict[str, dict[str, st.SearchStrategy[Any]]]:
    """Every public method of a unit's repositories: the valid values of each parameter."""
    job = st.sampled_from([world.job, world.bare])
    text = st.text(max_size=30)
    opt_text = st.none() | text
    when = st.datetimes(
        min_value=dt.datetime(2000, 1, 1),
        max_value=dt.datetime(2100, 1, 1),
        timezones=st.just(dt.UTC),
    )
    opt_when = st.none() | when
    none = st.none()
    small = st.integers(min_value=0, max_value=100)
    limit = st.integers(min_value=1, max_value=60)
    cursor = st.none() | CURSORS
    status = st.sampled_from(list(ExecutionStatus))
    by_job = {"job_id": job}
    return {
        "jobs.create": {
            "workflow_id": st.just(world.workflow),
            "client_id": none,
            "claim_submission_id": none,
            "credential_ids": none | st.just([]),
            "status": text,
            "created_at": opt_when,
            "id": none | st.uuids(),
        },
        "jobs.get": by_job,
        "jobs.find": by_job,
        "jobs.exists": by_job,
        "jobs.set_status": {
            **by_job,
            "status": text,
            "error_message": opt_text,
            "started_at": opt_when,
            "completed_at": opt_when,
        },
        "jobs.delete": {"job_id": st.just(world.bare)},
        "reference.add_organization": {"name": text},
        "reference.add_workflow": {"name": text, "id": none},
        "reference.add_client": {"name": text, "npi": opt_text, "id": none},
        "reference.add_claim_submission": {
            "client_id": none,
            "patient_name": opt_text,
            "patient_id": opt_text,
            "id": none,
        },
        "reference.add_credential": {"name": text, "portal": opt_text, "id": none},
        "reference.organization": {},
        "metadata.create": {
            **by_job,
            "primary_account_id": none,
            "total_steps": small,
            "status": status,
        },
        "metadata.start": {**by_job, "started_at": opt_when},
        "metadata.progress": {**by_job, "completed_steps": small, "total_steps": small},
        "metadata.complete": {**by_job, "completed_at": opt_when},
        "metadata.fail": {
            **by_job,
            "error_code": opt_text,
            "error_message": opt_text,
            "status": st.just(ExecutionStatus.FAILED),
            "completed_at": opt_when,
        },
        "metadata.get": by_job,
        "metadata.find": by_job,
        "metadata.summary": {
            "days": st.integers(1, 60),
            "first_day": none | st.dates(),
            "last_day": none | st.dates(),
            "workflow_id": none,
            "live": st.booleans(),
        },
        "metadata.list": {
            "statuses": none | st.sets(status, max_size=2),
            "workflow_id": none | st.just(world.workflow),
            "client_id": none,
            "error_code": opt_text,
            "created_from": opt_when,
            "created_to": opt_when,
            "cursor": cursor,
            "limit": limit,
        },
        "results.save": {**by_job, "output": st.just(OUTPUT)},
        "results.get": by_job,
        "results.find": by_job,
        "results.detail": by_job,
        "results.screenshots": by_job,
        "rag.save": {**by_job, "context": st.just(CONTEXT)},
        "rag.get": by_job,
        "rag.find": by_job,
        "rag.mark_rule_used": {
            **by_job,
            "rule": st.sampled_from(["R-1", 0]),
            "step_index": none | small,
            "reason": opt_text,
            "at": opt_when,
        },
        "rag.rule_usage": {
            "rule_id": st.just("R-1"),
            "since": when,
            "until": when,
            "cursor": cursor,
            "limit": limit,
        },
        "rag.top_rules": {"since": when, "until": when, "limit": limit},
        "logs.append": {
            **by_job,
            "entries": st.lists(st.builds(NewLogEntry, message=text), max_size=3),
        },
        "logs.for_job": {
            **by_job,
            "min_level": none | st.sampled_from(["warn", LogLevel.INFO]),
            "steps": none | st.lists(small | text, max_size=2),
            "cursor": cursor,
            "limit": limit,
        },
        "logs.tail": {**by_job, "n": limit},
        "logs.retention": {},
        "logs.set_retention": {"days": none | st.integers(30, 40_000)},
        "audit.record": {"access": st.just(ACCESS)},
        "audit.record_many": {"accesses": st.lists(st.just(ACCESS), max_size=3)},
        "audit.query": {
            "patient_ref": opt_text,
            "actor_id": none,
            "action": opt_text,
            "since": opt_when,
            "until": opt_when,
            "cursor": cursor,
            "limit": limit,
        },
        "audit.export": {"since": opt_when, "until": opt_when},
    }


def inner(world: World) -> dict[str, dict[str, st.SearchStrategy[Any]]]:
    """Arguments of the right shape with garbage inside, which the method checks itself:
    one field of a log entry, a RAG context, a result, an audit record; list items."""
    # Text no database stores as given is what slips through type checks: drawn most.
    junk = st.one_of(DIRTY, DIRTY, DIRTY, HUGE, ODD, garbage(world), st.just(world.other_job))

    def one_field(base: dict[str, Any], keys: list[str]) -> st.SearchStrategy[dict[str, Any]]:
        return st.tuples(st.sampled_from(keys), junk).map(lambda kv: {**base, kv[0]: kv[1]})

    entry = one_field({"message": "line", "step_index": 1}, ENTRY_KEYS) | st.builds(
        lambda field, value: NewLogEntry(**{"message": "line", field: value}),
        st.sampled_from(["message", "level", "step_index", "step_name", "metadata"]),
        junk,
    )
    metadata = st.dictionaries(st.text(max_size=3) | DIRTY, junk, min_size=1, max_size=2)
    entry |= metadata.map(lambda value: NewLogEntry("line", metadata=value))
    rule = one_field(CONTEXT["rules"][0], ["ruleId", "ruleType", "condition", "action", "x"])
    access = one_field(ACCESS, ACCESS_KEYS)
    return {
        "logs.append": {"entries": st.lists(entry, min_size=1, max_size=3)},
        "rag.save": {
            "context": one_field(CONTEXT, [*CONTEXT, "retrievedAt", "payers", "modifiers"])
            | rule.map(lambda r: {**CONTEXT, "rules": [r]})
        },
        "rag.mark_rule_used": {"reason": DIRTY | junk, "rule": junk, "at": junk},
        "results.save": {
            "output": one_field(OUTPUT, ["stepResults", "success", "x", "screenshots"])
        },
        "audit.record": {"access": access},
        "audit.record_many": {"accesses": st.lists(access | junk, min_size=1, max_size=3)},
        "jobs.create": {"credential_ids": st.lists(junk, min_size=1, max_size=2), "status": DIRTY},
        "jobs.set_status": {"status": DIRTY, "error_message": DIRTY},
        "metadata.list": {
            "statuses": st.lists(junk, min_size=1, max_size=2),
            "cursor": CURSORS,
            "error_code": DIRTY,
        },
        "metadata.fail": {"error_code": DIRTY, "error_message": DIRTY},
        "logs.for_job": {"steps": st.lists(junk, min_size=1, max_size=2), "cursor": CURSORS},
        "audit.query": {"patient_ref": DIRTY, "action": DIRTY, "cursor": CURSORS},
        "rag.rule_usage": {"rule_id": DIRTY, "cursor": CURSORS},
        "reference.add_workflow": {"name": DIRTY},
        "reference.add_client": {"name": DIRTY, "npi": DIRTY},
    }


Call = Callable[[Any], Awaitable[Any]]


def draw_call(data: st.DataObject, world: World, *, structured: bool) -> tuple[str, Call]:
    """A method and its arguments: one of them garbage (or none, or all), the others valid.

    ``structured``: only methods with structured input, the garbage inside it.
    """
    table, deep = specs(world), inner(world)
    names = sorted(table)
    if structured:  # the write paths that take whole batches and documents, most often
        names = sorted(deep) + ["logs.append"] * 4 + ["rag.save", "audit.record_many"] * 2
    name = data.draw(st.sampled_from(names), label="method")
    params = table[name]
    junk = garbage(world)
    if structured:
        target = data.draw(st.sampled_from(sorted(deep[name])), label="garbage in")
        wrong = {target: deep[name][target]}
    else:
        target = data.draw(st.sampled_from([None, "*", *params, *params]), label="garbage in")
        wrong = {p: junk for p in params if target in ("*", p)}
    kwargs = {
        param: data.draw(wrong.get(param, valid), label=param) for param, valid in params.items()
    }
    capability, method = name.split(".")

    async def call(uow: Any) -> Any:
        result = getattr(getattr(uow, capability), method)(**kwargs)
        if hasattr(result, "__aiter__"):
            return [item async for item in result]
        return await result

    return name, call


async def _state(store: Any, world: World, blobs: Path) -> tuple[Any, ...]:
    """Every table's row count, the rows of the organizations in play, the blobs."""
    tables = [t for t in Base.metadata.sorted_tables]
    counts = sa.select(
        *(sa.select(sa.func.count()).select_from(t).scalar_subquery() for t in tables)
    )
    orgs = (world.org, world.other_org)
    async with store.sessions() as session:
        counted = tuple((await session.execute(counts)).one())
        rows = []
        for model in (m.Job, m.ExecutionMetadata, m.ExecutionLogRetention):
            table: sa.Table = model.__table__  # type: ignore[assignment]
            found = await session.execute(
                sa.select(table)
                .where(table.c.organization_id.in_(orgs))
                .order_by(*table.primary_key)
            )
            rows.append(tuple(tuple(row) for row in found.all()))
    return counted, tuple(rows), _files(blobs)


def _files(blobs: Path) -> tuple[str, ...]:
    return tuple(sorted(str(p.relative_to(blobs)) for p in blobs.rglob("*") if p.is_file()))


async def _attempt(store: Any, org: uuid.UUID, call: Call) -> ExecstoreError | None:
    """Run ``call`` in a unit; an ExecstoreError is caught and the unit committed anyway
    (a caller carrying on). Any other exception propagates and fails the test."""
    refused: ExecstoreError | None = None
    try:
        async with store.unit(org) as uow:
            try:
                await call(uow)
            except ExecstoreError as exc:
                refused = exc
    except ExecstoreError as exc:  # the commit itself (e.g. an aborted transaction)
        refused = refused or exc
    return refused


@pytest.fixture(scope="session")
async def _garbage_pg(pg_server: PgServer) -> AsyncIterator[str]:
    name = await create_database(pg_server, prefix="execstore_garbage")
    url = pg_server.url(name)
    await migrate(url)
    yield url
    await drop_database(pg_server, name)


@pytest.fixture(scope="session")
async def _garbage_sqlite(tmp_path_factory: pytest.TempPathFactory) -> str:
    url = f"sqlite+aiosqlite:///{tmp_path_factory.mktemp('garbage') / 'execstore.db'}"
    await migrate(url)
    return url


@pytest.fixture
def garbage_url(backend: str, request: pytest.FixtureRequest) -> str:
    """A database of its own: garbage log lines of any year create partitions, and the
    operator jobs other tests run on the shared database act on every row."""
    return str(request.getfixturevalue(f"_garbage_{'pg' if backend == 'postgres' else 'sqlite'}"))


@pytest.fixture
async def garbage_store(garbage_url: str, tmp_path: Path) -> AsyncIterator[ExecStore]:
    settings = load_settings(database_url=garbage_url, blob_url=f"file:{tmp_path / 'blobs'}")
    async with ExecStore.open(settings) as store:
        yield store


@pytest.fixture
async def world(garbage_store: ExecStore) -> World:
    return await make_world(garbage_store)


async def make_world(store: Any) -> World:
    """Two organizations, a job with something of every capability, a bare job."""
    org, workflow = await new_org(store)
    job, bare = await new_job(store, org, workflow), await new_job(store, org, workflow)
    other_org, other_workflow = await new_org(store, "other")
    other_job = await new_job(store, other_org, other_workflow)
    async with store.unit(org) as uow:
        await uow.metadata.create(job, total_steps=2)
        await uow.results.save(job, OUTPUT)
        await uow.rag.save(job, CONTEXT)
        await uow.logs.append(job, [NewLogEntry(f"line {i}", step_index=i) for i in range(3)])
        await uow.audit.record_many([{**ACCESS, "job_id": job}] * 2)
    return World(org, workflow, job, bare, other_org, other_job)


async def _check(
    store: Any, world: World, blobs: Path, org: uuid.UUID, call: Call, name: str
) -> None:
    before = await _state(store, world, blobs)
    refused = await _attempt(store, org, call)
    event(f"{name}: {type(refused).__name__ if refused is not None else 'ok'}")
    if refused is not None:
        # A driver error other than a constraint's is input the method should have refused.
        assert type(refused) is not DatabaseError, f"{name}: {refused}"
        after = await _state(store, world, blobs)
        assert after == before, f"{name} refused ({type(refused).__name__}) but wrote"


GARBAGE_SETTINGS = settings(
    max_examples=EXAMPLES,
    deadline=None,
    derandomize="EXECSTORE_GARBAGE_EXAMPLES" not in os.environ,
    # No shrinking: every step of it is a database round trip; the drawn method and
    # arguments are printed as they are.
    phases=[Phase.explicit, Phase.reuse, Phase.generate],
    suppress_health_check=[
        HealthCheck.function_scoped_fixture,
        HealthCheck.too_slow,
        HealthCheck.data_too_large,
    ],
)


@GARBAGE_SETTINGS
@given(data=st.data())
async def test_garbage_in_a_typed_error_out_and_nothing_half_written(
    garbage_store: ExecStore, world: World, tmp_path: Path, data: st.DataObject
) -> None:
    name, call = draw_call(data, world, structured=False)
    unit_of = [world.org] * 6 + [world.other_org, uuid.UUID(int=1)]
    org = data.draw(st.sampled_from(unit_of), label="unit of")
    await _check(garbage_store, world, tmp_path / "blobs", org, call, name)


@GARBAGE_SETTINGS
@given(data=st.data())
async def test_garbage_inside_a_batch_document_or_filter_is_refused_whole(
    garbage_store: ExecStore, world: World, tmp_path: Path, data: st.DataObject
) -> None:
    name, call = draw_call(data, world, structured=True)
    await _check(garbage_store, world, tmp_path / "blobs", world.org, call, name)


def test_every_public_method_is_called() -> None:
    from execstore.audit import AuditRepository
    from execstore.jobs import JobRepository, ReferenceRepository
    from execstore.logs import LogRepository
    from execstore.metadata import MetadataRepository
    from execstore.rag import RagRepository
    from execstore.results import ResultRepository

    repos = {
        "jobs": JobRepository,
        "reference": ReferenceRepository,
        "metadata": MetadataRepository,
        "results": ResultRepository,
        "rag": RagRepository,
        "logs": LogRepository,
        "audit": AuditRepository,
    }
    public = {
        f"{prefix}.{name}"
        for prefix, repo in repos.items()
        for name in dir(repo)
        if not name.startswith("_") and inspect.isfunction(getattr(repo, name))
    }
    world = World(*(uuid.uuid4() for _ in range(6)))
    assert public == set(specs(world))
