"""The model-based lifecycle test, bounded for ``make test`` (``make soak`` runs it for hours)."""

from __future__ import annotations

from hypothesis import HealthCheck, settings
from hypothesis.stateful import run_state_machine_as_test

from support.postgres import PgServer

from .machine import LifecycleMachine


def test_the_lifecycle_matches_the_model(pg_server: PgServer, lifecycle_template: str) -> None:
    LifecycleMachine.server = pg_server
    LifecycleMachine.template = lifecycle_template
    run_state_machine_as_test(
        LifecycleMachine,
        settings=settings(
            max_examples=10,
            stateful_step_count=25,
            deadline=None,
            suppress_health_check=list(HealthCheck),
        ),
    )
