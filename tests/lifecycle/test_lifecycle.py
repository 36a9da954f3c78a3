"""The model-based lifecycle test, bounded for ``make test`` (``make soak`` runs it for hours).

Eight random examples of 25 steps each (about 20 s on a quiet 2-core machine, 35 s on a
busy one). Defects it found are pinned in ``test_regressions.py``; fixed walks onto every
boundary are in ``test_scenarios.py``.
"""

from __future__ import annotations

from hypothesis import HealthCheck, settings
from hypothesis.stateful import run_state_machine_as_test

from support.postgres import PgServer

from .machine import LifecycleMachine

BOUNDED = settings(
    max_examples=8,
    stateful_step_count=25,
    deadline=None,
    suppress_health_check=list(HealthCheck),
)


def test_the_lifecycle_matches_the_model(pg_server: PgServer, lifecycle_template: str) -> None:
    LifecycleMachine.server = pg_server
    LifecycleMachine.template = lifecycle_template
    run_state_machine_as_test(LifecycleMachine, settings=BOUNDED)
