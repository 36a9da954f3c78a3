"""The lifecycle model test for hours: ``make soak`` (``SOAK_SECONDS``, default 3600).

Runs the state machine of ``tests/lifecycle`` (the one ``make test`` runs a few examples
of) in rounds of fresh random examples until the time is up, against the same PostgreSQL
the tests use (``EXECSTORE_TEST_DATABASE_URL``, else 127.0.0.1:5432, else a throwaway
cluster), and prints every failure with the steps that reproduce it. Everything printed
also goes to the log file (``SOAK_LOG``, default ``soak.log``). The last lines say how
many examples and steps ran and how many failures were found; the exit code is 1 if any.

    SOAK_SECONDS=600 .venv/bin/python scripts/soak.py
"""

from __future__ import annotations

import io
import os
import sys
import time
import traceback
from pathlib import Path
from typing import Any, TextIO

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))


class Tee(io.TextIOBase):
    def __init__(self, *streams: TextIO) -> None:
        self.streams = streams

    def write(self, text: str) -> int:
        for stream in self.streams:
            stream.write(text)
            stream.flush()
        return len(text)

    def flush(self) -> None:
        for stream in self.streams:
            stream.flush()


def main() -> int:
    from hypothesis import HealthCheck, settings
    from hypothesis.stateful import run_state_machine_as_test

    from lifecycle.harness import template_database
    from lifecycle.machine import LifecycleMachine
    from support.postgres import find_server

    seconds = float(os.environ.get("SOAK_SECONDS", "3600"))
    steps_per_example = int(os.environ.get("SOAK_STEPS", "50"))
    batch = int(os.environ.get("SOAK_BATCH", "10"))
    max_failures = int(os.environ.get("SOAK_MAX_FAILURES", "5"))
    log_path = Path(os.environ.get("SOAK_LOG", "soak.log"))
    log = log_path.open("a", encoding="utf-8")
    out: Any = Tee(sys.__stdout__ or sys.stdout, log)
    sys.stdout = out
    started = time.monotonic()
    deadline = started + seconds
    failures = 0
    rounds = 0
    print(
        f"soak: {seconds:.0f} s, {steps_per_example} steps an example, rounds of {batch}; "
        f"log {log_path.resolve()}"
    )
    stats = LifecycleMachine.stats
    with find_server() as server, template_database(server) as template:
        LifecycleMachine.server = server
        LifecycleMachine.template = template
        while time.monotonic() < deadline and failures < max_failures:
            rounds += 1
            try:
                run_state_machine_as_test(
                    LifecycleMachine,
                    settings=settings(
                        max_examples=batch,
                        stateful_step_count=steps_per_example,
                        deadline=None,
                        database=None,
                        print_blob=True,
                        suppress_health_check=list(HealthCheck),
                    ),
                )
            except Exception:
                failures += 1
                print(f"--- failure {failures} (round {rounds}) ---")
                traceback.print_exc(file=out)
            elapsed = time.monotonic() - started
            print(
                f"round {rounds}: {stats['examples']} examples, {stats['steps']} steps, "
                f"{failures} failure(s), {elapsed:.0f} s"
            )
    elapsed = time.monotonic() - started
    print(
        f"soak done: {stats['examples']} examples, {stats['steps']} steps in {elapsed:.0f} s; "
        f"{failures} failure(s)"
    )
    print("tally: " + ", ".join(f"{k} {v}" for k, v in stats.items()))
    sys.stdout = sys.__stdout__
    log.close()
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
