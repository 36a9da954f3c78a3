"""Benchmark: RAG context storage, legacy JSON row vs normalized, on PostgreSQL.

Run: ``python benchmarks/bench_rag.py [--jobs N]`` (PostgreSQL on 127.0.0.1:5432; it
creates and drops its own database). One database just below ``contract_rag_rules``
(so both the legacy JSON table and the normalized tables exist); every job's context
is saved twice through the same API, ``uow.rag.save`` in the ``legacy`` mode (a JSON
row in ``execution_rag_rules_legacy``) and in the ``normalized`` mode, and then 0-5 of
its rules are marked used in each mode (the realistic update). Sizes are measured after
the saves and again after the marks; ``bytes_ratio`` is the worse of the two.

Data: a rule base of 3,000 rules with Zipf popularity (s = 1.0), 10-50 rules a job,
conditions and actions of 100-1,000 characters of claim-rules prose over a 4,000-word
vocabulary with codes and numbers; 1-3 payers of 200, 0-4 modifiers, usage reasons of
40-200 characters; 30 days of jobs in one organization.

Sizes are ``pg_total_relation_size`` (heap + TOAST + indexes) after VACUUM ANALYZE:
legacy is the JSON table as revision 0 defines it (its expression index, which only the
transition adds, is left out); normalized is the context table, the rule-use rows and the
three catalogs amortized over this run's jobs (``..._at_50k_month`` spreads the catalogs
over the plan's 50,000 jobs a month instead). Latencies are per call, each in its own unit of work,
legacy and normalized interleaved; ratios compare medians. Prints a table, then one JSON
object as the last line.
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import itertools
import json
import random
import statistics
import sys
import time
import uuid
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))

import asyncpg
from rich.console import Console
from rich.table import Table

from execstore.config import load_settings
from execstore.migrations.runner import migrate
from execstore.schema.rag import LEGACY_JOB_UUID_INDEX
from execstore.store import ExecStore
from support.postgres import create_database, drop_database, find_server

RULES = 3_000
START = dt.datetime(2025, 11, 1, tzinfo=dt.UTC)
SAMPLE_READS = 400
_SYLLABLES = "ka ro mi te su na lo pe di ra vo ti me sa no li be ta ku de".split()  # noqa: SIM905
_DOMAIN = (  # noqa: SIM905 - prose reads better than 51 quoted words
    "claim payer modifier procedure diagnosis eligibility authorization prior member "
    "provider coverage deductible copay coinsurance timely filing appeal denial bundled "
    "global period units anesthesia radiology laboratory telehealth place service "
    "rendering billing npi taxonomy medicare medicaid commercial secondary primary "
    "require attach submit append documentation when if then must within days portal "
    "status review"
).split()


class Prose:
    """Claim-rules-like text: domain words, a long tail of rarer words, codes and numbers."""

    def __init__(self, rng: random.Random) -> None:
        self.rng = rng
        words = set(_DOMAIN)
        while len(words) < 4_000:
            words.add("".join(rng.choices(_SYLLABLES, k=rng.randint(2, 4))))
        self.words = sorted(words)
        rng.shuffle(self.words)
        self.cumulative = list(
            itertools.accumulate(1 / (i + 1) ** 0.9 for i in range(len(self.words)))
        )

    def text(self, length: int) -> str:
        out: list[str] = []
        size = 0
        while size < length:
            roll = self.rng.random()
            if roll < 0.06:
                word = f"CPT {self.rng.randint(10000, 99999)}"
            elif roll < 0.09:
                letter = self.rng.choice("EFGJKMRZ")
                word = f"{letter}{self.rng.randint(10, 99)}.{self.rng.randint(0, 9)}"
            elif roll < 0.12:
                word = str(self.rng.randint(1, 365))
            else:
                word = self.rng.choices(self.words, cum_weights=self.cumulative)[0]
            out.append(word)
            size += len(word) + 1
        return " ".join(out)[:length].rstrip() + "."


def rule_base(rng: random.Random, prose: Prose) -> list[dict[str, Any]]:
    return [
        {
            "ruleId": f"rule_{i:05d}",
            "ruleType": rng.choice(["billing", "coding", "eligibility", "authorization", "portal"]),
            "condition": prose.text(rng.randint(100, 1000)),
            "action": prose.text(rng.randint(100, 1000)),
        }
        for i in range(RULES)
    ]


def make_contexts(
    count: int, seed: int = 11
) -> list[tuple[dict[str, Any], list[tuple[int, int, str, dt.datetime]]]]:
    """``count`` (context, uses) pairs: the saved context and the marks to apply after."""
    rng = random.Random(seed)
    prose = Prose(rng)
    rules = rule_base(rng, prose)
    popularity = list(itertools.accumulate(1 / (i + 1) for i in range(RULES)))
    payers = [
        {
            "payerName": f"{prose.text(18)} Health",
            "payerId": f"{rng.randint(10000, 99999)}",
            "scenario": prose.text(rng.randint(30, 160)),
        }
        for _ in range(200)
    ]
    modifiers = [
        {"code": code, "scenario": prose.text(rng.randint(30, 160))}
        for code in ["25", "59", "26", "TC", "GT", "95", "76", "77", "91", "LT", "RT", "50", "51"]
        for _ in range(3)
    ]
    out = []
    for _ in range(count):
        at = START + dt.timedelta(seconds=rng.randrange(30 * 86400))
        chosen: list[int] = []
        wanted = rng.randint(10, 50)
        while len(chosen) < wanted:
            pick = rng.choices(range(RULES), cum_weights=popularity)[0]
            if pick not in chosen:
                chosen.append(pick)
        scores = sorted((round(rng.uniform(0.45, 0.99), 4) for _ in chosen), reverse=True)
        context = {
            "retrievedAt": at.isoformat(),
            "ragRetrievalTimeMs": rng.randint(40, 1200),
            "totalRulesRetrieved": len(chosen),
            "totalRulesUsed": 0,
            "averageRetrievalScore": round(statistics.fmean(scores), 4),
            "payers": [rng.choice(payers) for _ in range(rng.randint(1, 3))],
            "modifiers": rng.sample(modifiers, rng.randint(0, 4)),
            "rules": [
                dict(rules[i], retrievalScore=s) for i, s in zip(chosen, scores, strict=True)
            ],
        }
        uses = [
            (
                pos,
                rng.randint(0, 40),
                prose.text(rng.randint(40, 200)),
                at + dt.timedelta(seconds=rng.randint(5, 900)),
            )
            for pos in rng.sample(range(len(chosen)), rng.randint(0, min(5, len(chosen))))
        ]
        out.append((context, uses))
    return out


async def run(count: int) -> dict[str, Any]:
    from execstore.migrations.runner import compatible_revisions  # noqa: F401

    with find_server() as server:
        name = await create_database(server, prefix="bench_rag")
        url = server.url(name)
        try:
            return await _measure(url, server.dsn(name), count)
        finally:
            await drop_database(server, name)


async def _measure(url: str, dsn: str, count: int) -> dict[str, Any]:
    await migrate(url, "contract_execution_metadata")
    data = make_contexts(count)
    settings = load_settings(database_url=url, blob_url="file:/tmp/execstore-bench-rag")
    timings: dict[str, list[float]] = {
        "save_legacy": [],
        "save_normalized": [],
        "get_legacy": [],
        "get_normalized": [],
    }
    async with ExecStore.open(settings) as store:
        org = uuid.uuid4()
        async with store.unit(org) as uow:
            await uow.reference.add_organization("bench")
            wf = (await uow.reference.add_workflow("claims")).id
        jobs = []
        for start in range(0, count, 500):
            async with store.unit(org) as uow:
                jobs += [
                    (await uow.jobs.create(workflow_id=wf)).id
                    for _ in range(min(500, count - start))
                ]
        for i, (job, (context, _)) in enumerate(zip(jobs, data, strict=True)):
            for mode in ("legacy", "normalized") if i % 2 else ("normalized", "legacy"):
                started = time.perf_counter()
                async with store.unit(org, rag_mode=mode) as uow:
                    await uow.rag.save(job, context)
                timings[f"save_{mode}"].append(time.perf_counter() - started)
        inserted = await _sizes(dsn, count)
        for job, (_, uses) in zip(jobs, data, strict=True):
            for mode in ("legacy", "normalized"):
                for pos, step, reason, at in uses:
                    async with store.unit(org, rag_mode=mode) as uow:
                        await uow.rag.mark_rule_used(job, pos, step, reason, at)
        updated = await _sizes(dsn, count)
        rng = random.Random(5)
        sample = rng.sample(jobs, min(SAMPLE_READS, len(jobs)))
        for i, job in enumerate(sample):
            order = ("legacy", "normalized") if i % 2 else ("normalized", "legacy")
            found = {}
            for mode in order:
                started = time.perf_counter()
                async with store.unit(org, rag_mode=mode) as uow:
                    found[mode] = await uow.rag.get(job)
                timings[f"get_{mode}"].append(time.perf_counter() - started)
            assert found["legacy"] == found["normalized"], job
        usage = await _rule_usage(store, org)
    med = {k: statistics.median(v) * 1000 for k, v in timings.items()}
    p95 = {k: statistics.quantiles(v, n=20)[-1] * 1000 for k, v in timings.items()}
    ratios = (inserted["bytes_ratio"], updated["bytes_ratio"])
    return {
        "jobs": count,
        **updated,
        "bytes_ratio": max(ratios),  # the worse of the two states
        "bytes_ratio_after_updates": ratios[1],
        "bytes_ratio_after_inserts": ratios[0],
        "legacy_bytes_per_job_after_inserts": inserted["legacy_bytes_per_job"],
        "normalized_bytes_per_job_after_inserts": inserted["normalized_bytes_per_job"],
        "save_legacy_ms": round(med["save_legacy"], 3),
        "save_normalized_ms": round(med["save_normalized"], 3),
        "save_normalized_p95_ms": round(p95["save_normalized"], 3),
        "get_legacy_ms": round(med["get_legacy"], 3),
        "get_normalized_ms": round(med["get_normalized"], 3),
        "get_normalized_p95_ms": round(p95["get_normalized"], 3),
        "save_latency_ratio": round(med["save_normalized"] / med["save_legacy"], 3),
        "get_latency_ratio": round(med["get_normalized"] / med["get_legacy"], 3),
        **usage,
    }


async def _sizes(dsn: str, count: int) -> dict[str, Any]:
    conn = await asyncpg.connect(dsn)
    try:
        await conn.execute("VACUUM ANALYZE")
        size = lambda rel: conn.fetchval("SELECT pg_total_relation_size($1::regclass)", rel)  # noqa: E731
        legacy = await size("execution_rag_rules_legacy") - await conn.fetchval(
            "SELECT pg_relation_size($1::regclass)", LEGACY_JOB_UUID_INDEX
        )
        context = await size("execution_rag_context")
        uses = await size("execution_rag_rule_uses")
        gin = await conn.fetchval(
            "SELECT pg_relation_size('ix_execution_rag_context_rule_entry_ids'::regclass)"
        )
        catalogs = {
            t: await size(t)
            for t in ("rag_rule_catalog", "rag_payer_catalog", "rag_modifier_catalog")
        }
        distinct = await conn.fetchval("SELECT count(*) FROM rag_rule_catalog")
    finally:
        await conn.close()
    normalized = context + uses + sum(catalogs.values())
    return {
        "legacy_bytes_per_job": round(legacy / count, 1),
        "normalized_bytes_per_job": round(normalized / count, 1),
        "context_bytes_per_job": round(context / count, 1),
        "rule_uses_bytes_per_job": round(uses / count, 1),
        "gin_index_bytes_per_job": round(gin / count, 1),
        "catalog_bytes_per_job": round(sum(catalogs.values()) / count, 1),
        "rule_catalog_bytes_per_entry": round(catalogs["rag_rule_catalog"] / max(distinct, 1), 1),
        "rule_catalog_entries": distinct,
        "bytes_ratio": round(normalized / legacy, 4),
        # The catalogs hold the rule base once: at the plan's 50,000 jobs a month the
        # same catalog is spread over ten times the jobs.
        "normalized_bytes_per_job_at_50k_month": round(
            (context + uses) / count + sum(catalogs.values()) / 50_000, 1
        ),
    }


async def _rule_usage(store: Any, org: uuid.UUID) -> dict[str, Any]:
    since, until = START, START + dt.timedelta(days=30)
    out: dict[str, Any] = {}
    for mode in ("normalized", "legacy"):
        firsts, fulls = [], []
        pages = total = 0
        for _ in range(1 if mode == "legacy" else 20):
            started = time.perf_counter()
            async with store.unit(org, rag_mode=mode) as uow:
                page = await uow.rag.rule_usage("rule_00000", since, until, limit=100)
                firsts.append(time.perf_counter() - started)
                pages, total = 1, len(page.items)
                while page.next_cursor is not None:
                    page = await uow.rag.rule_usage(
                        "rule_00000", since, until, limit=100, cursor=page.next_cursor
                    )
                    pages += 1
                    total += len(page.items)
            fulls.append(time.perf_counter() - started)
        out[f"rule_usage_{mode}_first_page_ms" if mode == "legacy" else "rule_usage_ms"] = round(
            statistics.median(firsts) * 1000, 3
        )
        out[f"rule_usage_{mode}_all_pages_ms"] = round(statistics.median(fulls) * 1000, 3)
        out["rule_usage_jobs"] = total
        out["rule_usage_pages"] = pages
    return out


TARGETS = {"bytes_ratio": 0.10, "save_latency_ratio": 1.5, "get_latency_ratio": 1.5}


def show(result: dict[str, Any]) -> None:
    table = Table(title=f"RAG context, {result['jobs']:,} jobs (PostgreSQL)")
    table.add_column("figure")
    table.add_column("value", justify="right")
    table.add_column("target", justify="right")
    for key, value in result.items():
        target = TARGETS.get(key)
        verdict = (
            "" if target is None else f"<= {target} " + ("met" if value <= target else "MISSED")
        )
        table.add_row(key, f"{value:,}" if isinstance(value, int | float) else str(value), verdict)
    Console().print(table)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--jobs", type=int, default=5_000)
    args = parser.parse_args()
    result = asyncio.run(run(args.jobs))
    show(result)
    print(json.dumps(result), flush=True)


if __name__ == "__main__":
    main()
