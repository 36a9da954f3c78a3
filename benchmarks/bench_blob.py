"""Benchmark: archived-result reads and writes on Azurite, against the raw SDK.

Run: ``python benchmarks/bench_blob.py`` (starts its own Azurite). Prints a table, then as
the last line one JSON object:

- ``cold_read_ratio``: execstore ``read_bytes`` with an empty cache (download, sha256
  check, gunzip) over raw ``download_blob().readall()`` + ``gzip.decompress`` of the same
  blob in the same run (target <= 1.15);
- ``cached_read_ratio``: a cache hit over the cold read (target <= 0.01);
- compress+upload throughput (MB of JSON per second) for gzip and zstd.

Each figure is the median of interleaved repetitions, so drift affects both sides alike.
"""

from __future__ import annotations

import asyncio
import gzip
import json
import random
import statistics
import sys
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))

from rich.console import Console
from rich.table import Table

from execstore.blob import ArchiveCache, Archives, AzureBlobStore
from execstore.config import Codec
from support.azurite import AzuriteServer, start_azurite

TARGET_BYTES = 1024 * 1024
READ_REPS = 41
WRITE_REPS = 15
COLD_TARGET = 1.15
CACHED_TARGET = 0.01

PAYERS = ["Aetna", "Cigna", "UnitedHealthcare", "Humana", "Anthem BCBS", "Kaiser", "Medicare"]
ACTIONS = ["navigate", "click", "type", "select", "extract", "wait_for", "screenshot"]
STATUSES = ["approved", "pending", "denied", "needs_review"]


def step_result_document(target: int = TARGET_BYTES, seed: int = 42) -> dict[str, Any]:
    """A realistic job result: nested steps, repeated keys, varied ids and text."""
    rng = random.Random(seed)
    steps: list[dict[str, Any]] = []
    doc: dict[str, Any] = {
        "job_id": "9f0c2d4e-8a51-4c3b-9e77-0d1f2a3b4c5d",
        "workflow": {"id": "claim-status-check", "version": 14, "payer": rng.choice(PAYERS)},
        "status": "completed",
        "steps": steps,
    }
    size = 0
    index = 0
    while size < target:
        claim = f"CLM-{rng.randrange(10**9):09d}"
        step = {
            "index": index,
            "action": rng.choice(ACTIONS),
            "selector": f"#claims-table > tr:nth-child({rng.randrange(1, 60)}) > td.{claim[-3:]}",
            "started_at": f"2024-05-{rng.randrange(1, 29):02d}T{rng.randrange(24):02d}:"
            f"{rng.randrange(60):02d}:{rng.randrange(60):02d}.{rng.randrange(1000):03d}Z",
            "duration_ms": rng.randrange(20, 9000),
            "ok": rng.random() > 0.05,
            "screenshot": {
                "key": f"shots/{claim}/{index:04d}.png",
                "width": 1920,
                "height": rng.choice([1080, 1200, 2400]),
            },
            "extracted": {
                "claim_number": claim,
                "patient_account": f"PA{rng.randrange(10**7):07d}",
                "billed_amount": round(rng.uniform(50, 25_000), 2),
                "allowed_amount": round(rng.uniform(0, 20_000), 2),
                "status": rng.choice(STATUSES),
                "remark_codes": rng.sample(["N130", "CO45", "PR1", "PR2", "CO97", "M15"], 2),
                "payer_note": " ".join(
                    rng.choice(
                        [
                            "claim",
                            "processed",
                            "per",
                            "contract",
                            "member",
                            "benefit",
                            "deductible",
                            "applied",
                            "see",
                            "EOB",
                            "appeal",
                            "within",
                            "days",
                            "of",
                            "notice",
                        ]
                    )
                    for _ in range(rng.randrange(6, 30))
                ),
            },
            "log": f"step {index} {rng.choice(ACTIONS)} on {claim} took "
            f"{rng.randrange(20, 9000)}ms (attempt {rng.randrange(1, 4)})",
        }
        steps.append(step)
        size += len(json.dumps(step, separators=(",", ":")))
        index += 1
    return doc


async def timed_ms(fn: Callable[[], Awaitable[Any]], reps: int) -> list[float]:
    samples = []
    for _ in range(reps):
        started = time.perf_counter()
        await fn()
        samples.append((time.perf_counter() - started) * 1000)
    return samples


async def run(server: AzuriteServer) -> dict[str, Any]:
    from azure.storage.blob.aio import BlobServiceClient

    container = server.new_container_name("bench")
    store = AzureBlobStore(container, connection_string=server.connection_string)
    raw_service = BlobServiceClient.from_connection_string(server.connection_string)
    try:
        document = step_result_document()
        raw_size = len(json.dumps(document, ensure_ascii=False, separators=(",", ":")))
        archives = Archives(store)
        ref = await archives.write_document("results/bench/result.json.gz", document)
        raw_blob = raw_service.get_blob_client(container, ref.key)

        async def raw_read() -> bytes:
            stored = await (await raw_blob.download_blob()).readall()
            return gzip.decompress(stored)

        async def cold_read() -> bytes:
            cold = Archives(store, cache=ArchiveCache())  # a new, empty cache every time
            return await cold.read_bytes(ref)

        assert await raw_read() == await cold_read()  # same bytes, else the race is unfair
        for _ in range(5):  # warm connections on both clients
            await raw_read()
            await cold_read()
        raw_samples: list[float] = []
        cold_samples: list[float] = []
        for _ in range(READ_REPS):  # interleaved so drift hits both sides alike
            raw_samples += await timed_ms(raw_read, 1)
            cold_samples += await timed_ms(cold_read, 1)
        raw_ms = statistics.median(raw_samples)
        cold_ms = statistics.median(cold_samples)

        warm = Archives(store, cache=ArchiveCache())
        await warm.read_bytes(ref)
        cached_ms = statistics.median(await timed_ms(lambda: warm.read_bytes(ref), READ_REPS * 5))

        throughput: dict[str, float] = {}
        write_ms: dict[str, float] = {}
        for codec in (Codec.GZIP, Codec.ZSTD):
            writer = Archives(store, codec=codec)
            counter = iter(range(10**6))

            async def write(
                writer: Archives = writer, codec: Codec = codec, counter: Any = counter
            ) -> None:
                await writer.write_document(f"results/bench/{codec}-{next(counter)}", document)

            write_ms[codec.value] = statistics.median(await timed_ms(write, WRITE_REPS))
            throughput[codec.value] = raw_size / 1e6 / (write_ms[codec.value] / 1000)
    finally:
        await raw_service.close()
        await store.close()

    return {
        "cold_read_ratio": round(cold_ms / raw_ms, 3),
        "cached_read_ratio": round(cached_ms / cold_ms, 5),
        "gzip_write_mb_s": round(throughput["gzip"], 1),
        "zstd_write_mb_s": round(throughput["zstd"], 1),
        "raw_read_ms": round(raw_ms, 3),
        "cold_read_ms": round(cold_ms, 3),
        "cached_read_ms": round(cached_ms, 4),
        "gzip_write_ms": round(write_ms["gzip"], 2),
        "zstd_write_ms": round(write_ms["zstd"], 2),
        "payload_bytes": raw_size,
        "stored_bytes": ref.stored_size,
        "compression_ratio": round(raw_size / ref.stored_size, 2),
        "cold_read_target": COLD_TARGET,
        "cached_read_target": CACHED_TARGET,
        "targets_met": cold_ms / raw_ms <= COLD_TARGET and cached_ms / cold_ms <= CACHED_TARGET,
    }


def report(result: dict[str, Any]) -> None:
    table = Table(title="execstore blob benchmark (Azurite, 1 MiB step-result JSON)")
    table.add_column("measure")
    table.add_column("value", justify="right")
    table.add_column("target", justify="right")
    table.add_row(
        "payload / stored",
        f"{result['payload_bytes']:,} B / {result['stored_bytes']:,} B",
        f"{result['compression_ratio']}x",
    )
    table.add_row("raw SDK read + gunzip", f"{result['raw_read_ms']} ms", "")
    table.add_row("execstore cold read", f"{result['cold_read_ms']} ms", "")
    table.add_row("cold / raw", f"{result['cold_read_ratio']}", f"<= {COLD_TARGET}")
    table.add_row("execstore cache hit", f"{result['cached_read_ms']} ms", "")
    table.add_row("cached / cold", f"{result['cached_read_ratio']}", f"<= {CACHED_TARGET}")
    table.add_row(
        "gzip compress + upload",
        f"{result['gzip_write_mb_s']} MB/s",
        f"{result['gzip_write_ms']} ms",
    )
    table.add_row(
        "zstd compress + upload",
        f"{result['zstd_write_mb_s']} MB/s",
        f"{result['zstd_write_ms']} ms",
    )
    Console().print(table)


def main() -> int:
    server = start_azurite()
    try:
        result = asyncio.run(run(server))
    finally:
        server.stop()
    report(result)
    print(json.dumps(result))
    return 0 if result["targets_met"] else 1


if __name__ == "__main__":
    raise SystemExit(main())
