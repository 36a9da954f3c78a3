"""Break each stated guarantee on purpose and check that a test notices: ``make mutations``.

README promises tenant scoping, verification before deletion, bounds and locking. Each
row of :data:`MUTATIONS` names one such guarantee, the exact source snippet that
implements it, a replacement that breaks it, and the narrow tests that must then fail.
For every row the runner edits the file in place, runs ``python -m pytest -x -q`` on
those tests (with this checkout's ``src`` first on ``PYTHONPATH``), and restores the file
byte for byte (content and mtime, checked by sha256) whatever happens.

- CAUGHT: the tests failed (or timed out) on the mutant;
- SURVIVED: the tests passed on the mutant: a guarantee no test holds;
- ERROR: pytest could not run the tests (bad node id, nothing collected, ...).

Before any mutation the selected tests are run once on the untouched code (a test that
already fails would make every mutant look caught). A snippet that is not found exactly
once stops the run before anything is changed, so the table cannot rot silently. The
runner refuses to start if a file it would mutate has uncommitted changes (which also
catches a mutant left behind by a killed run: ``git diff`` shows it), writes no files of
its own (no bytecode, no pytest cache) and exits 1 if any mutant survived or errored.
Standard library only.

    python scripts/mutation_check.py [--list] [--only NAME ...] [--timeout SECONDS]
"""

from __future__ import annotations

import argparse
import hashlib
import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


@dataclass(frozen=True)
class Mutation:
    name: str
    """The guarantee, as a short slug."""
    path: str
    """The file to mutate, relative to the repository root."""
    original: str
    """Exact text that must occur exactly once in ``path``."""
    replacement: str
    tests: tuple[str, ...]
    """Pytest node ids or paths that must fail on the mutant."""


_LOG_BOUNDS = "tests/logs/test_boundaries.py::"
_LOG_EDGE = (
    _LOG_BOUNDS + "test_the_hot_window_and_retention_at_a_year_edge_with_a_chunk_spanning_weeks"
)
_LOG_TENANTS = "tests/logs/test_tenants.py::"
_LIFE = "tests/lifecycle/test_scenarios.py::"
_LIFE_LOGS = _LIFE + "test_logs_over_a_year_edge_with_two_retentions"
_LIFE_AUDIT = _LIFE + "test_audit_from_a_leap_day_to_six_years_later"
_LIFE_FIXED = "tests/lifecycle/test_regressions.py::"
_AUDIT_BOUNDS = "tests/audit/test_boundaries.py::"
_AUDIT_WINDOW = (
    _AUDIT_BOUNDS + "test_since_is_inclusive_and_until_exclusive_over_archived_and_hot_records"
)
_AUDIT_TENANTS = "tests/audit/test_tenants.py::"
_AUDIT_TRIGGER = (
    _AUDIT_TENANTS
    + "test_a_delete_is_let_through_only_for_records_their_own_organizations_pointer_covers"
)
_AUDIT_READS = _AUDIT_TENANTS + "test_reads_and_verification_see_one_organization_among_twins"
_AUDIT_OPERATORS = (
    _AUDIT_TENANTS + "test_archival_and_retention_for_one_organization_leave_the_others_records"
)

_METADATA_BOUNDS = "tests/metadata/test_boundaries.py::"
_METADATA_WINDOW = (
    _METADATA_BOUNDS + "test_created_from_is_inclusive_and_created_to_exclusive_to_the_microsecond"
)
_METADATA_DAYS = _METADATA_BOUNDS + "test_the_summary_days_are_whole_utc_days_across_a_leap_day"
_METADATA_STALE = (
    _METADATA_BOUNDS + "test_another_organizations_writes_mark_only_its_own_groups_stale"
)
_RAG_BOUNDS = "tests/rag/test_boundaries.py::"
_GARBAGE = (
    "tests/foundation/test_garbage.py::test_garbage_in_a_typed_error_out_and_nothing_half_written"
)
_GARBAGE_INSIDE = (
    "tests/foundation/test_garbage.py::"
    "test_garbage_inside_a_batch_document_or_filter_is_refused_whole"
)
_GATES = "tests/phases/test_contract_gates.py::"
_RAG_WINDOW = _RAG_BOUNDS + "test_since_is_inclusive_and_until_exclusive_to_the_millisecond"
_RECONCILE_TENANTS = (
    "tests/archival/test_reconcile_tenants.py::"
    "test_a_run_for_one_organization_leaves_the_others_losses_and_orphans"
)
_BOUNDS = "tests/foundation/test_bounds.py::"
_LOST = "tests/archival/test_lost_marks.py::"
_AUDIT_BACKFILL = (
    "tests/audit/test_backfill_tenants.py::"
    "test_one_organizations_backfill_leaves_the_twin_and_skips_a_locked_row"
)
_CLI_WINDOWS = (
    "tests/cli/test_windows_from_settings.py::"
    "test_archive_audit_and_log_retention_read_their_days_from_the_settings"
)
_TENANT_KEYS = (
    "tests/jobs/test_tenant_keys.py::test_a_row_naming_another_organizations_reference_is_refused"
)

MUTATIONS: tuple[Mutation, ...] = (
    # -- tenant scoping ----------------------------------------------------------------
    Mutation(
        "scope-repository-reads",
        "src/execstore/repository.py",
        "return stmt.where(getattr(self.model_type, self.scope_column) == self.organization_id)",
        "return stmt",
        (
            "tests/jobs/test_tenancy.py::test_another_organizations_job_cannot_be_read_changed_or_deleted",
        ),
    ),
    Mutation(
        "scope-owned-references",
        "src/execstore/repository.py",
        ".where(model.id.in_(wanted), model.organization_id == organization_id)",
        ".where(model.id.in_(wanted))",
        (
            "tests/jobs/test_tenancy.py::test_a_job_cannot_name_another_organizations_row",
            "tests/jobs/test_tenancy.py::test_one_foreign_credential_among_own_ones_is_refused",
            "tests/jobs/test_tenancy.py::test_a_claim_cannot_name_another_organizations_client",
        ),
    ),
    Mutation(
        "scope-metadata-page-account-names",
        "src/execstore/metadata/views.py",
        ".where(cred.organization_id == organization, cred.id.in_(wanted))",
        ".where(sa.true(), cred.id.in_(wanted))",
        (
            "tests/metadata/test_api.py::"
            "test_another_organizations_credential_in_a_job_reads_as_none",
        ),
    ),
    Mutation(
        "scope-metadata-row-account-names",
        "src/execstore/metadata/views.py",
        ".where(cred.organization_id == rows.c.organization_id, wanted)",
        ".where(sa.true(), wanted)",
        (
            "tests/metadata/test_api.py::"
            "test_another_organizations_credential_in_a_job_reads_as_none",
        ),
    ),
    Mutation(
        "plan-listing-values-out-of-sight",
        "src/execstore/metadata/listing.py",
        "return sa.select(bound).scalar_subquery() if on_postgres else bound",
        "return bound",
        ("tests/metadata/test_explain.py::test_deep_pages_settle_on_one_generic_plan",),
    ),
    Mutation(
        "scope-metadata-create",
        "src/execstore/metadata/repository.py",
        ".where(job.id == job_id, job.organization_id == self.organization_id, *checks)",
        ".where(job.id == job_id, *checks)",
        ("tests/metadata/test_api.py::test_another_organizations_rows_are_not_found",),
    ),
    Mutation(
        "scope-metadata-writes",
        "src/execstore/metadata/repository.py",
        "            _table.c.organization_id == self.organization_id,\n"
        "            _table.c.job_id == job_id,\n",
        "            _table.c.job_id == job_id,\n",
        ("tests/metadata/test_api.py::test_another_organizations_rows_are_not_found",),
    ),
    Mutation(
        "scope-metadata-listing",
        "src/execstore/metadata/listing.py",
        "[em.c.organization_id == org]",
        "[sa.or_(em.c.organization_id == org, sa.true())]",
        (
            "tests/metadata/test_listing.py::test_listing_never_shows_another_organization",
            "tests/metadata/test_listing.py::"
            "test_organizations_whose_ids_hash_alike_still_see_only_their_own",
        ),
    ),
    Mutation(
        "scope-rag-catalog-per-organization",
        "src/execstore/rag/normalized.py",
        "            model.organization_id == organization_id, model.digest.in_(set(keys[kind]))\n",
        "            model.digest.in_(set(keys[kind]))\n",
        ("tests/rag/test_tenancy.py",),
    ),
    Mutation(
        "scope-rag-insert-job",
        "src/execstore/rag/normalized.py",
        "    ).where(m.Job.id == job_id, m.Job.organization_id == organization_id)\n"
        "    done = await session.execute(",
        "    ).where(m.Job.id == job_id)\n    done = await session.execute(",
        (
            "tests/rag/test_bad_input.py::test_a_context_for_another_organizations_job_writes_nothing",
            "tests/rag/test_tenancy.py::test_the_insert_itself_refuses_another_organizations_job",
        ),
    ),
    Mutation(
        "scope-log-retention-per-organization",
        "src/execstore/logs/retention.py",
        ".where(_archive.organization_id == org, _archive.end_date < cutoff)",
        ".where(_archive.end_date < cutoff)",
        ("tests/logs/test_retention.py::test_each_organization_keeps_its_own_retention",),
    ),
    # -- verification ------------------------------------------------------------------
    Mutation(
        "verify-blob-sha256",
        "src/execstore/blob/codec.py",
        "    if digest != ref.sha256:\n",
        "    if False:\n",
        ("tests/blob/test_codec.py::test_sha_mismatch_is_corrupt",),
    ),
    Mutation(
        "verify-log-chunk-before-delete",
        "src/execstore/logs/chunks.py",
        "    await archives.verify(stored.ref)\n",
        "",
        (
            "tests/logs/test_archival.py::test_a_chunk_that_does_not_read_back_right_keeps_its_lines_hot",
        ),
    ),
    Mutation(
        "verify-waits-for-the-page-fetched-ahead",
        "src/execstore/audit/verify.py",
        "            await asyncio.gather(ahead, return_exceptions=True)\n",
        "            pass\n",
        ("tests/audit/test_verify.py::test_verification_leaves_no_fetch_running_behind_it",),
    ),
    Mutation(
        "lock-job-while-appending-logs",
        "src/execstore/logs/repository.py",
        'AND organization_id = $2 FOR KEY SHARE"',
        'AND organization_id = $2"',
        (
            "tests/logs/test_api.py::"
            "test_a_job_deleted_while_lines_are_appended_leaves_no_orphan_lines",
        ),
    ),
    Mutation(
        "lock-one-log-detach-at-a-time",
        "src/execstore/logs/archival.py",
        "                await auto.execute(sa.select(sa.func.pg_advisory_lock(_DETACH_LOCK)))\n",
        "",
        ("tests/logs/test_archival.py::test_workers_take_turns_detaching_partitions",),
    ),
    Mutation(
        "verify-audit-segment-before-delete",
        "src/execstore/audit/archival.py",
        'if [line for line in payload.split(b"\\n") if line] != plan.lines:',
        "if False:",
        (
            "tests/audit/test_archived_tamper.py::test_archival_keeps_hot_rows_when_the_stored_segment_differs",
        ),
    ),
    Mutation(
        "verify-audit-hot-chain-link",
        "src/execstore/audit/verify.py",
        'if link_of(digest[:8], "big", signed=True) != row[2]:',
        "if False:",
        ("tests/audit/test_tamper.py",),
    ),
    Mutation(
        "verify-audit-archived-chain-link",
        "src/execstore/audit/verify.py",
        "            if digest[:8] != link:\n",
        "            if False:\n",
        ("tests/audit/test_archived_tamper.py::test_an_edited_archived_record_is_named",),
    ),
    Mutation(
        "reconcile-detects-corrupt",
        "src/execstore/archival/reconcile.py",
        '            except ArchiveCorrupt:\n                return "corrupt"\n',
        '            except ArchiveCorrupt:\n                return "ok"\n',
        (
            "tests/results/test_reconcile.py::test_verify_reports_corrupt_blobs_and_never_deletes_them",
        ),
    ),
    Mutation(
        "reconcile-detects-lost",
        "src/execstore/archival/reconcile.py",
        "                elif not await archives.store.exists(pointer.ref.key):\n"
        '                    return "missing"\n',
        "                elif not await archives.store.exists(pointer.ref.key):\n"
        '                    return "ok"\n',
        (
            "tests/results/test_reconcile.py::test_lost_blob_is_reported_marked_and_restored",
            "tests/logs/test_reconcile.py::test_a_lost_chunk_is_marked_and_reads_fail_fast_until_restored",
        ),
    ),
    Mutation(
        "set-aside-refused-rows",
        "src/execstore/operations/batch.py",
        "            aside.append(SetAside(key(item), describe_failure(exc)))\n",
        "            raise\n",
        ("tests/foundation/test_batch.py",),
    ),
    Mutation(
        "results-backfill-sets-conflicts-aside",
        "src/execstore/results/backfill.py",
        "            aside.append(SetAside(str(plan.job.job_id), describe_failure(outcome)))\n",
        "            raise outcome\n",
        (
            "tests/results/test_legacy.py::test_a_job_whose_archive_key_holds_other_bytes_is_set_aside",
        ),
    ),
    Mutation(
        "legacy-uuid-keeps-uuid-text",
        "src/execstore/ids.py",
        "    if _UUID_TEXT.match(text):\n",
        '    if _UUID_TEXT.match(text) and not text.startswith("{"):\n',
        ("tests/foundation/test_ids.py",),
    ),
    # -- bounds ------------------------------------------------------------------------
    Mutation(
        "bound-text-marker",
        "src/execstore/textlimits.py",
        "    return head + TRUNCATION_MARKER\n",
        "    return head\n",
        ("tests/foundation/test_textlimits.py",),
    ),
    Mutation(
        "bound-column-fitted-on-bind",
        "src/execstore/schema/types.py",
        "        return fit_text(value, self.length)\n",
        "        return value\n",
        ("tests/foundation/test_textlimits.py::TestColumnEnforcement",),
    ),
    Mutation(
        "bound-json-depth",
        "src/execstore/jsonvalues.py",
        "    elif kind is list:\n        if depth > max_depth:\n",
        "    elif kind is list:\n        if depth > max_depth + 1:\n",
        ("tests/results/test_values.py::test_the_depth_limit_is_exact",),
    ),
    Mutation(
        "bound-log-metadata-fast-json",
        "src/execstore/logs/encoding.py",
        '        if b"null" in out:\n',
        "        if False:\n",
        ("tests/logs/test_json_encoding.py::test_documented_conversions_and_refusals",),
    ),
    Mutation(
        "verify-log-batch-undone",
        "src/execstore/logs/ingest.py",
        "        pending.exception()  # retrieved: asyncio would log it as never retrieved\n"
        "    await _execute(driver, _UNDO)\n",
        "        pending.exception()  # retrieved: asyncio would log it as never retrieved\n"
        "    await _execute(driver, _RELEASE)\n",
        (
            "tests/logs/test_api.py::"
            "test_a_bad_entry_in_the_last_chunk_names_its_place_and_undoes_the_rest",
        ),
    ),
    Mutation(
        "verify-log-vanished-month-rewritten",
        "src/execstore/logs/ingest.py",
        "            await _refresh_months(session, caches)\n            return False\n",
        "            await _refresh_months(session, caches)\n            return True\n",
        (
            "tests/logs/test_partitions.py::"
            "test_a_large_batch_whose_month_vanished_is_written_the_classic_way",
        ),
    ),
    Mutation(
        "bound-listing-limit",
        "src/execstore/pages.py",
        "or not 1 <= limit <= MAX_LIMIT:",
        "or limit < 1:",
        (
            "tests/foundation/test_pages.py::test_the_limit_rule_is_one_to_a_thousand_and_only_ints",
            "tests/metadata/test_listing.py::test_a_limit_outside_one_to_max_is_refused_not_capped",
        ),
    ),
    Mutation(
        "cursor-checksum-checked",
        "src/execstore/pages.py",
        "if not hmac.compare_digest(mac, _mac(body)) or _canonical(raw) != token:",
        "if _canonical(raw) != token:",
        ("tests/foundation/test_pages.py::test_a_cursor_altered_anywhere_is_refused",),
    ),
    Mutation(
        "cursor-kind-checked",
        "src/execstore/pages.py",
        "or values[0] != kind:",
        "or not isinstance(values[0], str):",
        ("tests/foundation/test_pages.py::test_a_cursor_of_another_listing_is_refused",),
    ),
    Mutation(
        "cursor-int-range-checked",
        "src/execstore/pages.py",
        "    if not _INT_MIN <= value <= _INT_MAX:\n",
        "    if False:\n",
        (
            "tests/foundation/test_pages.py::"
            "test_a_forged_payload_of_the_wrong_shape_or_range_is_refused",
        ),
    ),
    Mutation(
        "rag-get-raises-not-found",
        "src/execstore/rag/repository.py",
        "        if found is None:\n",
        "        if found is None and False:\n",
        ("tests/rag/test_api.py::test_get_returns_exactly_what_was_saved",),
    ),
    Mutation(
        "results-get-raises-not-found",
        "src/execstore/results/repository.py",
        '            raise NotFound(f"job {job_id} has no result")\n        return found\n',
        "            pass\n        return found  # type: ignore[return-value]\n",
        (
            "tests/foundation/test_not_found.py",
            "tests/results/test_api.py::test_no_result_yet_is_not_found_or_none",
        ),
    ),
    Mutation(
        "results-detail-raises-not-found",
        "src/execstore/results/repository.py",
        '        if result is None:\n            raise NotFound(f"job {job_id} has no result")\n',
        "        if result is None:\n            return None  # type: ignore[return-value]\n",
        (
            "tests/foundation/test_not_found.py",
            "tests/results/test_api.py::test_no_result_yet_is_not_found_or_none",
        ),
    ),
    Mutation(
        "log-message-surrogate-refused",
        "src/execstore/logs/prepare.py",
        '        if not message.isascii():\n            _text(index, "message", message)\n',
        "",
        (
            "tests/logs/test_api.py::test_a_bad_entry_refuses_the_whole_batch",
            "tests/logs/test_api.py::test_a_lone_surrogate_late_in_a_large_batch_refuses_all_of_it",
        ),
    ),
    Mutation(
        "log-metadata-surrogate-refused",
        "src/execstore/logs/encoding.py",
        "    if not text.isascii():\n        text.encode()\n",
        "",
        (
            "tests/logs/test_api.py::test_a_bad_entry_refuses_the_whole_batch",
            "tests/logs/test_api.py::test_a_lone_surrogate_late_in_a_large_batch_refuses_all_of_it",
        ),
    ),
    Mutation(
        "rag-text-surrogate-refused",
        "src/execstore/rag/types.py",
        'raise ValueError(f"a surrogate code point at position {at} is not text")',
        "pass",
        ("tests/rag/test_bad_input.py::test_bad_input_is_a_typed_error_and_writes_nothing",),
    ),
    Mutation(
        "unit-rag-mode-typed",
        "src/execstore/store.py",
        "        return RagMode(value)\n    except (ValueError, TypeError) as exc:\n",
        "        return RagMode(value)\n    except TypeError as exc:\n",
        (
            "tests/foundation/test_store.py::TestUnitOfWork::"
            "test_an_unknown_rag_mode_or_an_organization_that_is_not_a_uuid_is_refused",
        ),
    ),
    Mutation(
        "arguments-checked",
        "src/execstore/arguments.py",
        "        if checks is None:\n            checks = _checks_of(fn, names)\n",
        "        checks = {}\n",
        (_GARBAGE,),
    ),
    Mutation(
        "garbage-log-message-surrogate-refused",
        "src/execstore/logs/prepare.py",
        '        if not message.isascii():\n            _text(index, "message", message)\n',
        "",
        (_GARBAGE_INSIDE,),
    ),
    Mutation(
        "garbage-log-message-type-checked",
        "src/execstore/logs/prepare.py",
        "        if type(message) is not str:\n            raise InvalidLogEntry(",
        "        if False:\n            raise InvalidLogEntry(",
        (_GARBAGE_INSIDE,),
    ),
    Mutation(
        "bound-rag-rule-usage-page",
        "src/execstore/rag/repository.py",
        "        items = items[:limit]\n",
        "",
        (
            "tests/rag/test_api.py::test_rule_usage_pages_through_the_jobs_that_retrieved_a_rule",
            "tests/rag/test_api.py::test_rule_usage_pages_hold_at_most_limit_items",
        ),
    ),
    Mutation(
        "bound-cache-bytes",
        "src/execstore/blob/cache.py",
        "_CountingLRU(maxsize=max(max_bytes, 1), getsizeof=_byte_size)",
        "_CountingLRU(maxsize=2**62, getsizeof=_byte_size)",
        ("tests/blob/test_cache.py",),
    ),
    # -- locking -----------------------------------------------------------------------
    Mutation(
        "lock-results-backfill-skip-locked",
        "src/execstore/results/backfill.py",
        "stmt = stmt.with_for_update(of=m.Job, skip_locked=True)",
        "stmt = stmt.with_for_update(of=m.Job)",
        ("tests/results/test_legacy.py::test_a_claimed_batch_is_skipped_not_waited_for",),
    ),
    Mutation(
        "lock-log-retention-skip-locked",
        "src/execstore/logs/retention.py",
        "stmt = stmt.with_for_update(skip_locked=True)",
        "stmt = stmt.with_for_update()",
        ("tests/logs/test_retention.py::test_a_chunk_another_run_holds_is_skipped_not_waited_for",),
    ),
    Mutation(
        "lock-one-summary-refresh",
        "src/execstore/metadata/summaries.py",
        "sa.select(sa.func.pg_try_advisory_xact_lock(REFRESH_LOCK_KEY))",
        "sa.select(sa.true())",
        ("tests/metadata/test_summaries.py::test_one_refresh_at_a_time",),
    ),
    Mutation(
        "lock-log-partition-per-worker",
        "src/execstore/logs/archival.py",
        "mine = bool(await conn.scalar(sa.select(sa.func.pg_try_advisory_lock(key))))",
        "mine = True",
        ("tests/logs/test_archival.py",),
    ),
    # -- time: the store's clock, never the wall clock ---------------------------------
    # (tests/foundation/test_clock.py's scan catches each of these too; the tests named
    # here show the behaviour itself goes wrong.)
    Mutation(
        "clock-log-archival-cutoff",
        "src/execstore/logs/archival.py",
        "cutoff = clock.now() - dt.timedelta(days=hot_days)",
        "cutoff = dt.datetime.now(dt.UTC) - dt.timedelta(days=hot_days)",
        ("tests/clock/test_log_windows.py::test_archival_and_retention_follow_the_clock",),
    ),
    Mutation(
        "clock-audit-checkpoint-due",
        "src/execstore/audit/writer.py",
        "    now = clock.now()\n",
        "    now = dt.datetime.now(dt.UTC)\n",
        ("tests/clock/test_audit_windows.py::test_a_checkpoint_falls_due_by_the_clock",),
    ),
    Mutation(
        "clock-reconcile-grace",
        "src/execstore/archival/reconcile.py",
        "cutoff = clock.now() - grace",
        "cutoff = dt.datetime.now(dt.UTC) - grace",
        (
            "tests/clock/test_operator_windows.py"
            "::test_an_orphan_blob_is_young_until_grace_has_passed_by_the_clock",
        ),
    ),
    Mutation(
        "audit-retention-finishes-after-its-tombstone",
        "src/execstore/audit/archival.py",
        "    with contextlib.suppress(ArchiveConflict):\n",
        "    with contextlib.nullcontext():\n",
        (
            "tests/lifecycle/test_regressions.py"
            "::test_audit_retention_killed_after_its_tombstone_is_finished_under_another_retention",
            "tests/lifecycle/test_scenarios.py"
            "::test_soak_2026_12_07_retention_killed_after_its_tombstone_then_a_longer_one",
        ),
    ),
    Mutation(
        "reconcile-ages-leftovers-by-the-store-clock",
        "src/execstore/archival/reconcile.py",
        "leftover_cutoff = SYSTEM_CLOCK.now() - grace",
        "leftover_cutoff = cutoff",
        (
            "tests/lifecycle/test_regressions.py"
            "::test_reconcile_leaves_a_running_put_alone_under_a_clock_far_from_the_wall",
        ),
    ),
    Mutation(
        "clock-stamp-left-to-the-server",
        "src/execstore/logs/repository.py",
        "                        updated_at=self.clock.now(),\n",
        "",
        ("tests/clock/test_stamps.py::test_every_write_is_stamped_by_the_clock",),
    ),
    # -- negative paths: every transition, every missing side, every phase -------------
    Mutation(
        "transition-start-only-from-pending-or-queued",
        "src/execstore/metadata/repository.py",
        "            {ExecutionStatus.PENDING, ExecutionStatus.QUEUED},\n",
        "            LIVE_STATUSES,\n",
        ("tests/metadata/test_transitions.py::test_each_write_from_every_status[sqlite-start]",),
    ),
    Mutation(
        "transition-finished-runs-stay-finished",
        "src/execstore/metadata/repository.py",
        '            "complete",\n            LIVE_STATUSES,\n',
        '            "complete",\n            set(ExecutionStatus),\n',
        ("tests/metadata/test_transitions.py::test_each_write_from_every_status[sqlite-complete]",),
    ),
    Mutation(
        "transition-refusal-is-invalid-transition",
        "src/execstore/metadata/repository.py",
        "        if current is None:\n"
        '            raise NotFound(f"execution metadata for job {job_id} not found")\n',
        "        if current is not None:\n"
        '            raise NotFound(f"execution metadata for job {job_id} not found")\n',
        (
            "tests/metadata/test_transitions.py::test_each_write_from_every_status[postgres-fail-cancelled]",
        ),
    ),
    Mutation(
        "transition-progress-only-while-live",
        "src/execstore/metadata/repository.py",
        ").where(*self._live_row(job_id, LIVE_STATUSES))",
        ").where(*self._live_row(job_id, set(ExecutionStatus)))",
        ("tests/metadata/test_transitions.py::test_each_write_from_every_status[sqlite-progress]",),
    ),
    Mutation(
        "transition-finish-folds-progress",
        "src/execstore/metadata/repository.py",
        'if _table.c.status.name in values and values["status"] not in LIVE_STATUSES:',
        "if False:",
        (
            "tests/metadata/test_transitions.py::test_each_write_from_every_status[postgres-fail-timed_out]",
        ),
    ),
    Mutation(
        "transition-job-status-keeps-times-not-given",
        "src/execstore/jobs/repository.py",
        '        if started_at is not None:\n            values["started_at"] = started_at\n',
        '        values["started_at"] = started_at\n',
        ("tests/jobs/test_status.py",),
    ),
    Mutation(
        "rag-dual-save-sees-the-unread-side",
        "src/execstore/rag/repository.py",
        "if existing is None and self._writes_legacy and self._writes_normalized:",
        "if False:",
        (
            "tests/rag/test_modes.py::test_save_is_write_once_whichever_side_holds_the_context"
            "[sqlite-dual_write_read_normalized]",
        ),
    ),
    Mutation(
        "rag-legacy-write-unverifies",
        "src/execstore/rag/repository.py",
        "                if self.mode is RagMode.LEGACY:\n"
        "                    # Changed on one side only",
        "                if False:\n                    # Changed on one side only",
        (
            "tests/rag/test_modes.py::test_marking_a_rule_updates_the_modes_sides_and_only_legacy_unverifies"
            "[sqlite-legacy]",
        ),
    ),
    Mutation(
        "rag-unreadable-legacy-row-is-typed",
        "src/execstore/rag/legacy_store.py",
        "    except (ValidationError, ValueError, TypeError) as exc:\n"
        "        raise InvalidRagContext(",
        "    except ImportError as exc:\n        raise InvalidRagContext(",
        (
            "tests/rag/test_modes.py"
            "::test_a_legacy_row_that_is_not_a_context_is_a_typed_error_in_every_mode[sqlite]",
        ),
    ),
    Mutation(
        "rag-modes-refused-after-contract",
        "src/execstore/store.py",
        "if mode.uses_legacy_table and self.revision in rag_contracted_revisions():",
        "if False:",
        (
            "tests/rag/test_modes.py::test_modes_that_need_the_legacy_table_are_refused_after_the_contract",
        ),
    ),
    Mutation(
        "rag-shadow-missing-side-is-a-mismatch",
        "src/execstore/rag/repository.py",
        "            if legacy != found:",
        "            if legacy is not None and found is not None and legacy != found:",
        (
            "tests/rag/test_shadow.py",
            "tests/rag/test_modes.py::test_shadow_reads_count_a_missing_side_as_a_mismatch",
        ),
    ),
    Mutation(
        "rag-backfill-after-contract-reports-complete",
        "src/execstore/rag/backfill.py",
        "    if present:  # else contract_rag_rules ran: all done",
        "    if True:",
        (
            "tests/phases/test_operator_jobs.py::test_every_operator_job_in_every_phase_then_the_contract[sqlite]",
        ),
    ),
    Mutation(
        "phase-log-archival-waits-until-verified",
        "src/execstore/logs/archival.py",
        "BACKFILL_BUSY_PHASES: Final = (1, 2)",
        "BACKFILL_BUSY_PHASES: Final = (1,)",
        ("tests/phases/test_log_backfill.py::test_every_call_from_every_phase",),
    ),
    Mutation(
        "phase-log-verify-compares-per-job",
        "src/execstore/logs/backfill.py",
        "        if legacy_sums != moved_sums:\n",
        "        if sum(c for c, _ in legacy_sums.values())"
        " != sum(c for c, _ in moved_sums.values()):\n",
        ("tests/phases/test_log_backfill.py::test_every_call_from_every_phase[sqlite]",),
    ),
    Mutation(
        "phase-log-mismatch-keeps-legacy",
        "src/execstore/logs/backfill.py",
        "            )\n            return\n        total = sum(",
        "            )\n        total = sum(",
        ("tests/phases/test_log_backfill.py::test_every_call_from_every_phase[sqlite]",),
    ),
    Mutation(
        "contract-refuses-without-a-completion-record",
        "src/execstore/migrations/helpers.py",
        "    if found is None:\n        raise BackfillIncomplete(",
        "    if found is None:\n        return\n        raise BackfillIncomplete(",
        (
            _GATES
            + "test_each_contract_refuses_without_its_record_and_with_another_ones_only[sqlite]",
        ),
    ),
    Mutation(
        "contract-requires-its-own-backfills-record",
        "src/execstore/migrations/helpers.py",
        "sa.select(completions.c.details).where(completions.c.name == name)",
        "sa.select(completions.c.details).where(completions.c.name != '')",
        (
            _GATES
            + "test_each_contract_refuses_without_its_record_and_with_another_ones_only[sqlite]",
        ),
    ),
    Mutation(
        "contract-metadata-names-its-backfill",
        "src/execstore/migrations/versions/r0007_contract_execution_metadata.py",
        'BACKFILL = "metadata"',
        'BACKFILL = "audit"',
        (
            _GATES
            + "test_each_contract_refuses_without_its_record_and_with_another_ones_only[sqlite]",
        ),
    ),
    Mutation(
        "contract-refuses-a-legacy-table-changed-since",
        "src/execstore/migrations/helpers.py",
        '    if found.get("legacy_rows") != held:\n',
        "    if False:\n",
        (
            _GATES + "test_the_metadata_check_with_either_side_missing_gates_the_contract[sqlite]",
            _GATES + "test_rag_verified_marks_through_every_write_and_the_contract[sqlite]",
        ),
    ),
    Mutation(
        "contract-needs-no-record-for-an-empty-legacy-table",
        "src/execstore/migrations/helpers.py",
        "    if not held:\n        return\n",
        "    if held < 0:\n        return\n",
        (
            "tests/foundation/test_migration_contracts.py"
            "::test_a_contract_counts_the_legacy_rows_of_every_organization",
        ),
    ),
    Mutation(
        "backfill-records-only-when-nothing-is-left",
        "src/execstore/operations/backfills.py",
        "    done = left == 0 and bool(verified) and not report.set_aside\n",
        "    done = bool(verified) and not report.set_aside\n",
        (_GATES + "test_rag_verified_marks_through_every_write_and_the_contract[sqlite]",),
    ),
    Mutation(
        "backfill-removes-a-record-that-no-longer-holds",
        "src/execstore/operations/backfills.py",
        "                elif not done:\n"
        "                    await forget_completion(session, name)\n",
        "                elif not done:\n                    pass\n",
        (_GATES + "test_the_metadata_check_with_either_side_missing_gates_the_contract[sqlite]",),
    ),
    Mutation(
        "backfill-with-rows-set-aside-is-not-complete",
        "src/execstore/operations/backfills.py",
        "    done = left == 0 and bool(verified) and not report.set_aside\n",
        "    done = left == 0 and bool(verified)\n",
        (_GATES + "test_the_metadata_check_with_either_side_missing_gates_the_contract[sqlite]",),
    ),
    Mutation(
        "rag-legacy-write-removes-the-completion-record",
        "src/execstore/rag/repository.py",
        '                    )\n                    await forget_completion(self.session, "rag")\n',
        "                    )\n",
        (_GATES + "test_rag_verified_marks_through_every_write_and_the_contract[sqlite]",),
    ),
    Mutation(
        "needs-attention-when-something-was-set-aside",
        "src/execstore/operations/batch.py",
        "        return bool(self.set_aside)\n",
        "        return False\n",
        (
            "tests/foundation/test_batch.py",
            "tests/cli/test_every_command.py::test_a_report_needing_attention_exits_3_with_its_rows_and_reasons",
        ),
    ),
    Mutation(
        "cli-exits-3-when-a-report-needs-attention",
        "src/execstore/cli/batch.py",
        "    if attention:\n        raise typer.Exit(ExitCode.PROBLEMS)\n",
        "    if False:\n        raise typer.Exit(ExitCode.PROBLEMS)\n",
        (
            "tests/cli/test_every_command.py::test_a_report_needing_attention_exits_3_with_its_rows_and_reasons",
        ),
    ),
    Mutation(
        "audit-retention-below-six-years-is-refused",
        "src/execstore/audit/archival.py",
        "    if retention_days < AUDIT_RETENTION_FLOOR_DAYS:\n",
        "    if retention_days < 0:\n",
        ("tests/audit/test_lifecycle.py",),
    ),
    Mutation(
        "side-metadata-check-orphans-are-explained",
        "src/execstore/metadata/check.py",
        '            report.details["orphaned"].append(aside.key)\n',
        "            unmigrated.append(aside)\n",
        (
            "tests/phases/test_contract_gates.py::test_the_metadata_check_with_either_side_missing_gates_the_contract[sqlite]",
        ),
    ),
    Mutation(
        "side-metadata-check-lists-unmoved-rows",
        "src/execstore/metadata/check.py",
        '    unmigrated += [SetAside(legacy_id, "not moved yet") for legacy_id, _ in keep]\n',
        "",
        (
            "tests/phases/test_contract_gates.py::test_the_metadata_check_with_either_side_missing_gates_the_contract[sqlite]",
        ),
    ),
    Mutation(
        "side-reconcile-marks-only-with-repair",
        "src/execstore/archival/reconcile.py",
        "if repair and not pointer.marked_lost:",
        "if not pointer.marked_lost:",
        ("tests/phases/test_archive_sides.py",),
    ),
    Mutation(
        "side-reconcile-clears-restored-with-repair",
        "src/execstore/archival/reconcile.py",
        '                    found["restored"].append(key)\n                    if repair:\n',
        '                    found["restored"].append(key)\n                    if False:\n',
        ("tests/phases/test_archive_sides.py",),
    ),
    Mutation(
        "side-reconcile-corrupt-is-not-lost",
        "src/execstore/archival/reconcile.py",
        '                if state == "missing":\n',
        '                if state in ("missing", "corrupt"):\n',
        ("tests/phases/test_archive_sides.py",),
    ),
    Mutation(
        "side-legacy-screenshot-row-listed-once",
        "src/execstore/results/backfill.py",
        "        if not (isinstance(row.url, str) and row.url in known)",
        "        if True",
        (
            "tests/results/test_states.py::test_legacy_screenshot_rows_against_the_json_with_either_side_missing",
        ),
    ),
    Mutation(
        "side-legacy-screenshot-key-never-overwritten",
        "src/execstore/results/backfill.py",
        "        if LEGACY_SCREENSHOTS_KEY in document:\n",
        "        if False:\n",
        (
            "tests/results/test_states.py::test_legacy_screenshot_rows_against_the_json_with_either_side_missing",
        ),
    ),
    Mutation(
        "side-audit-indexed-checkpoint-needs-its-blob",
        "src/execstore/audit/verify.py",
        "        if blob is None or blob[0] != digest:",
        "        if blob is not None and blob[0] != digest:",
        ("tests/audit/test_verify_sides.py::test_each_missing_side_is_named_and_nothing_else_is",),
    ),
    Mutation(
        "side-audit-gap-needs-a-tombstone",
        "src/execstore/audit/verify.py",
        "        if not covered or anchor is None:",
        "        if anchor is None:",
        ("tests/audit/test_verify_sides.py::test_each_missing_side_is_named_and_nothing_else_is",),
    ),
    Mutation(
        "side-audit-records-need-a-chain-head",
        "src/execstore/audit/verify.py",
        "    if head is None:\n        if last:\n",
        "    if head is None:\n        if False:\n",
        ("tests/audit/test_verify_sides.py::test_each_missing_side_is_named_and_nothing_else_is",),
    ),
    Mutation(
        "state-detached-month-archives-each-line-once",
        "src/execstore/logs/archival.py",
        "                    if (row.job_id, row.id) in archived:\n"
        "                        continue\n",
        "",
        ("tests/logs/test_partition_states.py",),
    ),
    # -- boundaries: every window at its exact value, with data spanning it -------------
    # (tests/*/test_boundaries.py: chunks and segments span weeks, so "first" and
    # "newest" differ; each boundary is tried at its value, one below and one above.)
    Mutation(
        "log-hot-window-line-at-cutoff",
        "src/execstore/logs/chunks.py",
        "        stmt = stmt.where(table.c.timestamp < before)\n",
        "        stmt = stmt.where(table.c.timestamp <= before)\n",
        (_LOG_EDGE,),
    ),
    Mutation(
        "log-hot-window-partition-end",
        "src/execstore/logs/archival.py",
        "p.end is not None and p.end <= cutoff",
        "p.end is not None and p.end < cutoff",
        (_LOG_EDGE,),
    ),
    Mutation(
        "log-hot-window-partition-start",
        "src/execstore/logs/archival.py",
        "p.end is not None and p.end <= cutoff",
        "p.start is not None and p.start <= cutoff",
        (_LOG_EDGE,),
    ),
    Mutation(
        "log-chunk-pointer-start",
        "src/execstore/logs/chunks.py",
        '        "start_date": chunk.start,\n',
        '        "start_date": chunk.end,\n',
        (_LOG_EDGE, _LOG_BOUNDS + "test_chunk_rows_cut_an_organizations_month_in_the_database"),
    ),
    Mutation(
        "log-chunk-span-earliest",
        "src/execstore/logs/chunks.py",
        "self.start = timestamp if self.start is None else min(self.start, timestamp)",
        "self.start = timestamp if self.start is None else max(self.start, timestamp)",
        (_LOG_BOUNDS + "test_chunk_rows_cut_an_organizations_month_in_the_database",),
    ),
    Mutation(
        "log-chunk-rows-at-job-boundary",
        "src/execstore/logs/chunks.py",
        "if chunk is not None and len(chunk) >= self.chunk_rows:",
        "if chunk is not None and len(chunk) > self.chunk_rows:",
        (
            _LOG_BOUNDS
            + "test_a_chunk_closes_at_the_first_job_boundary_once_it_holds_chunk_rows_lines",
            _LOG_BOUNDS + "test_chunk_rows_cut_an_organizations_month_in_the_database",
        ),
    ),
    Mutation(
        "log-chunk-rows-giant-job",
        "src/execstore/logs/chunks.py",
        "len(chunk) >= self.chunk_rows * _GIANT_JOB_FACTOR",
        "len(chunk) > self.chunk_rows * _GIANT_JOB_FACTOR",
        (_LOG_BOUNDS + "test_a_single_job_is_cut_at_four_times_chunk_rows",),
    ),
    Mutation(
        "log-read-cursor-chunk-newest-line",
        "src/execstore/logs/repository.py",
        "stmt = stmt.where(_archive.end_date >= after[0])",
        "stmt = stmt.where(_archive.start_date >= after[0])",
        (_LOG_EDGE,),
    ),
    Mutation(
        "log-read-cursor-same-instant",
        "src/execstore/logs/repository.py",
        "stmt = stmt.where(_archive.end_date >= after[0])",
        "stmt = stmt.where(_archive.end_date > after[0])",
        (_LOG_EDGE,),
    ),
    Mutation(
        "log-retention-newest-line",
        "src/execstore/logs/retention.py",
        ".where(_archive.organization_id == org, _archive.end_date < cutoff)",
        ".where(_archive.organization_id == org, _archive.start_date < cutoff)",
        (_LOG_EDGE,),
    ),
    Mutation(
        "log-retention-exact-age",
        "src/execstore/logs/retention.py",
        ".where(_archive.organization_id == org, _archive.end_date < cutoff)",
        ".where(_archive.organization_id == org, _archive.end_date <= cutoff)",
        (_LOG_EDGE, _LOG_BOUNDS + "test_retention_counts_days_across_a_leap_day"),
    ),
    Mutation(
        "log-retention-equal-to-hot-window",
        "src/execstore/logs/retention.py",
        "        if days < hot_days:\n",
        "        if days <= hot_days:\n",
        (
            _LOG_BOUNDS
            + "test_a_stored_retention_equal_to_the_hot_window_applies_one_day_less_is_set_aside",
        ),
    ),
    Mutation(
        "log-set-retention-hot-window",
        "src/execstore/logs/repository.py",
        "            if days < self.hot_days:\n",
        "            if days <= self.hot_days:\n",
        (
            _LOG_BOUNDS
            + "test_set_retention_refuses_one_day_under_the_hot_window_and_over_the_maximum",
        ),
    ),
    Mutation(
        "log-set-retention-maximum",
        "src/execstore/logs/repository.py",
        "            if days > MAX_RETENTION_DAYS:\n",
        "            if days >= MAX_RETENTION_DAYS:\n",
        (
            _LOG_BOUNDS
            + "test_set_retention_refuses_one_day_under_the_hot_window_and_over_the_maximum",
        ),
    ),
    Mutation(
        "audit-archive-record-at-cutoff",
        "src/execstore/audit/archival.py",
        "                    if created >= cutoff:\n",
        "                    if created > cutoff:\n",
        (_AUDIT_BOUNDS + "test_archival_at_a_year_edge_with_a_segment_spanning_weeks",),
    ),
    Mutation(
        "audit-segment-month-of-its-year",
        "src/execstore/audit/archival.py",
        "(created.year, created.month) != (\n"
        "                        plan.start.year,\n"
        "                        plan.start.month,\n",
        "(created.month,) != (\n                        plan.start.month,\n",
        (
            _AUDIT_BOUNDS
            + "test_a_segment_never_holds_two_months_not_even_the_same_month_of_two_years",
        ),
    ),
    Mutation(
        "audit-segment-record-limit",
        "src/execstore/audit/archival.py",
        "limit=min(5000, limit - (len(plan.lines) if plan else 0)),",
        "limit=5000,",
        (_AUDIT_BOUNDS + "test_a_segment_holds_at_most_segment_records",),
    ),
    Mutation(
        "audit-segment-start-earliest",
        "src/execstore/audit/archival.py",
        "                    plan.start = min(plan.start, created)\n",
        "",
        (_AUDIT_BACKFILL,),
    ),
    Mutation(
        "audit-segment-default-size",
        "src/execstore/audit/archival.py",
        "SEGMENT_RECORDS: Final = 50_000",
        "SEGMENT_RECORDS: Final = 5_000",
        (_AUDIT_BOUNDS + "test_fifty_thousand_records_a_segment_unless_told",),
    ),
    Mutation(
        "audit-retention-newest-record",
        "src/execstore/audit/archival.py",
        "if s.end_date < cutoff and six_years_after(s.end_date) <= now",
        "if s.start_date < cutoff and six_years_after(s.start_date) <= now",
        (_AUDIT_BOUNDS + "test_retention_on_the_sixth_anniversary_of_a_leap_day",),
    ),
    Mutation(
        "audit-retention-exact-age",
        "src/execstore/audit/archival.py",
        "if s.end_date < cutoff and six_years_after(s.end_date) <= now",
        "if s.end_date <= cutoff and six_years_after(s.end_date) <= now",
        (_AUDIT_BOUNDS + "test_retention_on_the_sixth_anniversary_of_a_leap_day",),
    ),
    Mutation(
        "audit-query-segment-ends-after-since",
        "src/execstore/audit/reader.py",
        "stmt = stmt.where(_ARCHIVES.c.end_date >= since)",
        "stmt = stmt.where(_ARCHIVES.c.start_date >= since)",
        (_AUDIT_WINDOW,),
    ),
    Mutation(
        "audit-query-segment-starts-before-until",
        "src/execstore/audit/reader.py",
        "stmt = stmt.where(_ARCHIVES.c.start_date < until)",
        "stmt = stmt.where(_ARCHIVES.c.end_date < until)",
        (_AUDIT_WINDOW,),
    ),
    Mutation(
        "audit-query-archived-since-inclusive",
        "src/execstore/audit/repository.py",
        "return created >= low and (high is None or created < high)",
        "return created > low and (high is None or created < high)",
        (_AUDIT_WINDOW,),
    ),
    Mutation(
        "audit-query-archived-until-exclusive",
        "src/execstore/audit/repository.py",
        "return created >= low and (high is None or created < high)",
        "return created >= low and (high is None or created <= high)",
        (_AUDIT_WINDOW,),
    ),
    Mutation(
        "audit-query-hot-since-inclusive",
        "src/execstore/audit/repository.py",
        "        if since is not None:\n            filters.append(_LOG.c.created_at >= since)\n",
        "        if since is not None:\n            filters.append(_LOG.c.created_at > since)\n",
        (_AUDIT_WINDOW,),
    ),
    Mutation(
        "audit-export-hot-until-exclusive",
        "src/execstore/audit/repository.py",
        "                    filters.append(_LOG.c.created_at < until)\n",
        "                    filters.append(_LOG.c.created_at <= until)\n",
        (_AUDIT_WINDOW,),
    ),
    Mutation(
        "audit-query-page-limit",
        "src/execstore/audit/repository.py",
        "        limit = check_limit(limit)\n",
        "        limit = max(1, limit)\n",
        (_AUDIT_BOUNDS + "test_a_page_holds_one_to_a_thousand_records",),
    ),
    Mutation(
        "audit-query-last-page-has-no-cursor",
        "src/execstore/audit/repository.py",
        "        more = len(found) > limit\n",
        "        more = len(found) >= limit\n",
        (_AUDIT_BOUNDS + "test_a_page_holds_one_to_a_thousand_records",),
    ),
    Mutation(
        "audit-query-reads-one-past-the-page",
        "src/execstore/audit/repository.py",
        "session, patient_ref, actor_id, action, since, until, after, limit + 1",
        "session, patient_ref, actor_id, action, since, until, after, limit",
        (_AUDIT_BOUNDS + "test_a_page_holds_one_to_a_thousand_records",),
    ),
    # -- deletion: verified first, evidence left behind ---------------------------------
    Mutation(
        "log-message-at-its-limit",
        "src/execstore/schema/logs.py",
        "message: Mapped[str] = mapped_column(BoundedString(8000))",
        "message: Mapped[str] = mapped_column(BoundedString(7999))",
        (_LOG_BOUNDS + "test_a_message_of_8000_characters_is_kept_one_more_is_fitted",),
    ),
    Mutation(
        "log-partitions-months-ahead",
        "src/execstore/schema/partitions.py",
        "    for _ in range(months_ahead):\n",
        "    for _ in range(months_ahead - 1):\n",
        (_LOG_BOUNDS + "test_partitions_ahead_cross_a_year_edge",),
    ),
    Mutation(
        "metadata-listing-created-from-inclusive",
        "src/execstore/metadata/listing.py",
        'where.append(em.c.created_at >= value("created_from", em.c.created_at.type))',
        'where.append(em.c.created_at > value("created_from", em.c.created_at.type))',
        (_METADATA_WINDOW,),
    ),
    Mutation(
        "metadata-listing-created-to-exclusive",
        "src/execstore/metadata/listing.py",
        'where.append(em.c.created_at < value("created_to", em.c.created_at.type))',
        'where.append(em.c.created_at <= value("created_to", em.c.created_at.type))',
        (_METADATA_WINDOW,),
    ),
    Mutation(
        "page-limit-max-1000",
        "src/execstore/pages.py",
        "MAX_LIMIT: Final = 1000",
        "MAX_LIMIT: Final = 999",
        ("tests/foundation/test_pages.py::test_the_limit_rule_is_one_to_a_thousand_and_only_ints",),
    ),
    Mutation(
        "metadata-summary-n-days",
        "src/execstore/metadata/repository.py",
        "first = first_day or last - dt.timedelta(days=days - 1)",
        "first = first_day or last - dt.timedelta(days=days)",
        (_METADATA_DAYS,),
    ),
    Mutation(
        "metadata-summary-live-first-instant",
        "src/execstore/metadata/summaries.py",
        "            e.created_at >= _day_start(first_day),\n",
        "            e.created_at > _day_start(first_day),\n",
        (_METADATA_DAYS,),
    ),
    Mutation(
        "metadata-summary-live-last-day",
        "src/execstore/metadata/summaries.py",
        "            e.created_at < _day_start(last_day + dt.timedelta(days=1)),\n",
        "            e.created_at <= _day_start(last_day + dt.timedelta(days=1)),\n",
        (_METADATA_DAYS,),
    ),
    Mutation(
        "metadata-summary-rollup-first-day",
        "src/execstore/metadata/summaries.py",
        '            s.c.day >= sa.bindparam("first_day"),\n',
        '            s.c.day > sa.bindparam("first_day"),\n',
        (_METADATA_DAYS,),
    ),
    Mutation(
        "metadata-summary-rollup-last-day",
        "src/execstore/metadata/summaries.py",
        '            s.c.day <= sa.bindparam("last_day"),\n',
        '            s.c.day < sa.bindparam("last_day"),\n',
        (_METADATA_DAYS,),
    ),
    Mutation(
        "metadata-trigger-status-change-is-stale",
        "src/execstore/migrations/versions/r0005_slim_execution_metadata.py",
        '    "WHEN (OLD.status IS DISTINCT FROM NEW.status "\n    "OR ',
        '    "WHEN (',
        (_METADATA_STALE,),
    ),
    Mutation(
        "rag-usage-since-inclusive",
        "src/execstore/rag/normalized.py",
        "            c.retrieved_at >= since,\n",
        "            c.retrieved_at > since,\n",
        (_RAG_WINDOW,),
    ),
    Mutation(
        "rag-usage-until-exclusive",
        "src/execstore/rag/normalized.py",
        "            c.retrieved_at < until,\n",
        "            c.retrieved_at <= until,\n",
        (_RAG_WINDOW,),
    ),
    Mutation(
        "rag-top-rules-until-exclusive-postgres",
        "src/execstore/rag/normalized.py",
        "retrieved_at < :until\n), r AS (\n  SELECT x AS id",
        "retrieved_at <= :until\n), r AS (\n  SELECT x AS id",
        (_RAG_WINDOW,),
    ),
    Mutation(
        "rag-top-rules-since-inclusive-sqlite",
        "src/execstore/rag/normalized.py",
        "retrieved_at >= :since AND retrieved_at < :until\n), r AS (\n  SELECT x.value AS id",
        "retrieved_at > :since AND retrieved_at < :until\n), r AS (\n  SELECT x.value AS id",
        (_RAG_WINDOW,),
    ),
    Mutation(
        "rag-legacy-read-until-exclusive",
        "src/execstore/rag/legacy_store.py",
        "            table.c.retrieved_at < naive[1],\n",
        "            table.c.retrieved_at <= naive[1],\n",
        (_RAG_WINDOW,),
    ),
    Mutation(
        "rag-window-rounds-up-to-the-millisecond",
        "src/execstore/rag/repository.py",
        "    return _ceil_millis(since), _ceil_millis(until)\n",
        "    return millis(since), millis(until)  # type: ignore[return-value]\n",
        (_RAG_BOUNDS + "test_window_ends_between_two_milliseconds_hold_to_the_stored_times",),
    ),
    Mutation(
        "bound-checkpoint-hours",
        "src/execstore/config.py",
        "audit_checkpoint_hours: int = Field(default=24, ge=1, le=24)",
        "audit_checkpoint_hours: int = Field(default=24, ge=1, le=48)",
        (_BOUNDS + "test_settings_at_their_bounds",),
    ),
    Mutation(
        "bound-audit-retention-floor",
        "src/execstore/config.py",
        "AUDIT_RETENTION_FLOOR_DAYS = 6 * 365 + 2",
        "AUDIT_RETENTION_FLOOR_DAYS = 6 * 365 + 1",
        (_BOUNDS + "test_the_six_year_floor_is_2192_days",),
    ),
    Mutation(
        "bound-json-int-4000-digits",
        "src/execstore/jsonvalues.py",
        "_INT_LIMIT: Final = 10**MAX_INT_DIGITS",
        "_INT_LIMIT: Final = 10 ** (MAX_INT_DIGITS - 1)",
        (_BOUNDS + "test_integers_of_4000_digits_are_json_4001_are_not",),
    ),
    Mutation(
        "bound-json-negative-int",
        "src/execstore/jsonvalues.py",
        "if not -_INT_LIMIT < value < _INT_LIMIT:",
        "if not -_INT_LIMIT <= value < _INT_LIMIT:",
        (_BOUNDS + "test_integers_of_4000_digits_are_json_4001_are_not",),
    ),
    Mutation(
        "bound-text-at-its-limit-kept",
        "src/execstore/textlimits.py",
        "    if limit is None or len(value) <= limit:\n",
        "    if limit is None or len(value) < limit:\n",
        (_BOUNDS + "test_text_at_its_limit_is_kept_one_over_is_cut_to_the_limit_with_the_marker",),
    ),
    Mutation(
        "bound-cache-exactly-its-bytes",
        "src/execstore/blob/cache.py",
        "        if len(value) > self.max_bytes:\n",
        "        if len(value) >= self.max_bytes:\n",
        (_BOUNDS + "test_the_cache_holds_exactly_its_bytes",),
    ),
    Mutation(
        "settings-audit-hot-window-reaches-the-cli",
        "src/execstore/cli/archive.py",
        "days = settings.audit_hot_days if hot_days is None else hot_days",
        "days = settings.log_hot_days if hot_days is None else hot_days",
        (_CLI_WINDOWS,),
    ),
    Mutation(
        "settings-log-retention-reaches-the-cli",
        "src/execstore/store.py",
        "            default = self.settings.log_retention_days\n",
        "            default = self.settings.log_hot_days\n",
        (_CLI_WINDOWS,),
    ),
    Mutation(
        "settings-log-hot-window-reaches-the-unit",
        "src/execstore/store.py",
        "            hot_days=settings.log_hot_days,\n",
        "            hot_days=settings.log_retention_days,\n",
        (
            _LOG_BOUNDS
            + "test_set_retention_refuses_one_day_under_the_hot_window_and_over_the_maximum",
        ),
    ),
    Mutation(
        "log-page-default-limit",
        "src/execstore/logs/repository.py",
        "        limit: int = DEFAULT_LIMIT,\n",
        "        limit: int = 49,\n",
        (_LOG_BOUNDS + "test_a_page_is_50_lines_unless_told",),
    ),
    Mutation(
        "page-default-limit-50",
        "src/execstore/pages.py",
        "DEFAULT_LIMIT: Final = 50",
        "DEFAULT_LIMIT: Final = 51",
        (_LOG_BOUNDS + "test_a_page_is_50_lines_unless_told",),
    ),
    Mutation(
        "audit-page-default-limit",
        "src/execstore/audit/repository.py",
        "        limit: int = DEFAULT_LIMIT,\n",
        "        limit: int = 51,\n",
        (_AUDIT_BOUNDS + "test_a_page_is_50_records_unless_told",),
    ),
    Mutation(
        "metadata-summary-30-days",
        "src/execstore/metadata/repository.py",
        "        days: int = 30,\n",
        "        days: int = 31,\n",
        (_METADATA_DAYS,),
    ),
    Mutation(
        "audit-retention-reverifies-the-segment",
        "src/execstore/audit/archival.py",
        "    if digest != segment.end_hash:\n",
        "    if False:\n",
        (_AUDIT_BOUNDS + "test_a_segment_that_no_longer_verifies_is_set_aside_not_deleted",),
    ),
    Mutation(
        "audit-retention-writes-a-tombstone",
        "src/execstore/audit/archival.py",
        "        await archives.store_document(\n            key,\n",
        "        (\n            key,\n",
        (_AUDIT_BOUNDS + "test_retention_on_the_sixth_anniversary_of_a_leap_day",),
    ),
    Mutation(
        "lost-mark-honoured-by-log-reads",
        "src/execstore/logs/repository.py",
        "            if chunk.lost:\n",
        "            if False:\n",
        (_LOST + "test_a_lost_mark_holds_until_a_repair_run_clears_it",),
    ),
    Mutation(
        "lost-mark-honoured-by-result-reads",
        "src/execstore/results/repository.py",
        "        if archive.lost:\n",
        "        if False:\n",
        (_LOST + "test_a_lost_mark_holds_until_a_repair_run_clears_it",),
    ),
    Mutation(
        "lost-mark-set-on-pointer-rows",
        "src/execstore/archival/pointers.py",
        ".values(lost=lost)",
        ".values(lost=False)",
        (_LOST + "test_a_lost_mark_holds_until_a_repair_run_clears_it",),
    ),
    Mutation(
        "lost-mark-read-from-pointer-rows",
        "src/execstore/archival/pointers.py",
        "Pointer(self.ref_of(r), r[0].lost, getattr(r[0], key))",
        "Pointer(self.ref_of(r), False, getattr(r[0], key))",
        (_LOST + "test_a_lost_mark_holds_until_a_repair_run_clears_it",),
    ),
    Mutation(
        "archive-size-limit",
        "src/execstore/blob/codec.py",
        "        if size > self.max_size:\n",
        "        if False:\n",
        (
            "tests/blob/test_codec.py::"
            "test_a_payload_past_the_size_limit_is_refused_before_its_bytes_leave",
        ),
    ),
    Mutation(
        "lost-chunk-left-alone-by-job-deletion",
        "src/execstore/logs/deletion.py",
        "if chunk.lost or not may_hold_job(bytes(chunk.job_keys), job_id):",
        "if not may_hold_job(bytes(chunk.job_keys), job_id):",
        (_LOST + "test_deleting_a_job_leaves_a_lost_chunk_alone",),
    ),
    # -- tenants: a second organization whose rows would match were it ignored ---------
    Mutation(
        "tenant-log-read-archived-chunks",
        "src/execstore/logs/repository.py",
        "            _archive.organization_id == self.organization_id,\n"
        "            _archive.first_job <= job_id,\n",
        "            _archive.first_job <= job_id,\n",
        (_LOG_TENANTS + "test_reads_ignore_another_organizations_chunk_that_covers_the_job",),
    ),
    Mutation(
        "tenant-log-delete-archived-chunks",
        "src/execstore/logs/deletion.py",
        "                _archive.organization_id == organization_id,\n",
        "",
        (_LOG_TENANTS + "test_deleting_a_job_leaves_another_organizations_chunk_that_covers_it",),
    ),
    Mutation(
        "tenant-log-archival-chunk-jobs",
        "src/execstore/logs/chunks.py",
        "        .where(table.c.job_id.in_(list(job_ids)))\n",
        "",
        (_LOG_TENANTS + "test_archival_files_each_organizations_lines_under_its_own_chunks",),
    ),
    Mutation(
        "tenant-log-retention-org-option",
        "src/execstore/logs/retention.py",
        "        orgs = orgs.where(_archive.organization_id == organization_id)\n",
        "        orgs = orgs\n",
        (_LOG_TENANTS + "test_retention_for_one_organization_leaves_the_others_chunks",),
    ),
    Mutation(
        "tenant-metadata-summary-live",
        "src/execstore/metadata/summaries.py",
        "            e.organization_id == organization_id,\n",
        "",
        (_METADATA_DAYS,),
    ),
    Mutation(
        "tenant-metadata-summary-rollup",
        "src/execstore/metadata/summaries.py",
        '            s.c.organization_id == sa.bindparam("organization_id"),\n',
        "",
        (_METADATA_DAYS,),
    ),
    Mutation(
        "tenant-rag-top-rules-sqlite",
        "src/execstore/rag/normalized.py",
        "  WHERE organization_id = :organization_id AND retrieved_at >= :since"
        " AND retrieved_at < :until\n), r AS (\n  SELECT x.value AS id",
        "  WHERE (organization_id = :organization_id OR 1 = 1) AND retrieved_at >= :since"
        " AND retrieved_at < :until\n), r AS (\n  SELECT x.value AS id",
        (_RAG_WINDOW,),
    ),
    Mutation(
        "tenant-rag-legacy-read",
        "src/execstore/rag/legacy_store.py",
        '            == (organization_id if dialect == "postgresql" else str(organization_id)),\n',
        "            != None,  # noqa: E711\n",
        (_RAG_WINDOW,),
    ),
    Mutation(
        "tenant-rag-backfill-org-option",
        "src/execstore/rag/backfill.py",
        "    return stmt.where(legacy_uuid_sql(legacy_table.c.organization_id, dialect) == org)",
        "    return stmt",
        (_RAG_BOUNDS + "test_a_backfill_for_one_organization_moves_only_its_rows",),
    ),
    Mutation(
        "lock-rag-backfill-skip-locked",
        "src/execstore/rag/backfill.py",
        "stmt = stmt.with_for_update(skip_locked=True, of=legacy_table)",
        "stmt = stmt.with_for_update(of=legacy_table)",
        (_RAG_BOUNDS + "test_a_backfill_skips_a_row_another_worker_holds",),
    ),
    Mutation(
        "tenant-results-backfill-org-option",
        "src/execstore/results/backfill.py",
        "        stmt = stmt.where(m.Job.organization_id == org)\n",
        "        stmt = stmt\n",
        (
            "tests/results/test_tenants.py::"
            "test_archiving_one_organizations_results_leaves_the_others",
        ),
    ),
    Mutation(
        "tenant-key-metadata-primary-account",
        "src/execstore/migrations/versions/r0005_slim_execution_metadata.py",
        '            ["organization_id", "primary_account_id"],\n'
        '            ["credentials.organization_id", "credentials.id"],\n',
        '            ["primary_account_id"],\n            ["credentials.id"],\n',
        (_TENANT_KEYS,),
    ),
    Mutation(
        "tenant-key-job-client",
        "src/execstore/migrations/versions/r0001_add_varchar_limits.py",
        '    ("jobs", "client_id", "clients"),\n',
        "",
        (_TENANT_KEYS,),
    ),
    Mutation(
        "tenant-audit-backfill-org-option",
        "src/execstore/audit/backfill.py",
        'stmt = stmt.where(_LEGACY.c.organization_id.in_(wanted or [""]))',
        "stmt = stmt",
        (_AUDIT_BACKFILL,),
    ),
    Mutation(
        "lock-audit-backfill-skip-locked",
        "src/execstore/audit/backfill.py",
        "                            .with_for_update(skip_locked=True)\n",
        "                            .with_for_update()\n",
        (_AUDIT_BACKFILL,),
    ),
    Mutation(
        "tenant-reconcile-pointer-rows",
        "src/execstore/archival/pointers.py",
        "            stmt = stmt.where(self._organization == organization_id)\n"
        "        with translate_database_errors():\n            rows =",
        "            stmt = stmt\n        with translate_database_errors():\n            rows =",
        (_RECONCILE_TENANTS,),
    ),
    Mutation(
        "tenant-reconcile-blob-prefix",
        "src/execstore/archival/reconcile.py",
        "kind.prefix if organization_id is None else kind.organization_prefix(organization_id)",
        "kind.prefix",
        (_RECONCILE_TENANTS,),
    ),
    Mutation(
        "reconcile-grace-one-hour",
        "src/execstore/archival/reconcile.py",
        "DEFAULT_GRACE: Final = dt.timedelta(hours=1)",
        "DEFAULT_GRACE: Final = dt.timedelta(hours=2)",
        (
            "tests/archival/test_reconcile_tenants.py::"
            "test_the_default_grace_is_one_hour_to_the_microsecond",
        ),
    ),
    Mutation(
        "reconcile-grace-exact",
        "src/execstore/archival/reconcile.py",
        "if written is None or written > cutoff:",
        "if written is None or written >= cutoff:",
        (
            "tests/archival/test_reconcile_tenants.py::"
            "test_the_default_grace_is_one_hour_to_the_microsecond",
        ),
    ),
    Mutation(
        "reconcile-looks-again-before-deleting",
        "src/execstore/archival/reconcile.py",
        "                if await kind.referenced(session, [info.key]):\n",
        "                if False:\n",
        (
            "tests/archival/test_reconcile_tenants.py::"
            "test_an_orphan_whose_row_commits_meanwhile_is_not_deleted",
        ),
    ),
    Mutation(
        "tenant-audit-trigger-own-pointer",
        "src/execstore/migrations/versions/r0006_compact_phi_audit.py",
        "WHERE a.organization_id = OLD.organization_id",
        "WHERE 1 = 1",
        (_AUDIT_TRIGGER,),
    ),
    Mutation(
        "tenant-audit-trigger-first-seq-covered",
        "src/execstore/migrations/versions/r0006_compact_phi_audit.py",
        " AND OLD.seq BETWEEN a.first_seq AND a.last_seq)",
        " AND OLD.seq > a.first_seq AND OLD.seq <= a.last_seq)",
        (_AUDIT_TRIGGER,),
    ),
    Mutation(
        "tenant-audit-read-segments",
        "src/execstore/audit/reader.py",
        '            _ARCHIVES.c.organization_id == sa.bindparam("org"),\n',
        "",
        (_AUDIT_READS,),
    ),
    Mutation(
        "tenant-audit-read-hot-rows",
        "src/execstore/audit/reader.py",
        ".where(_LOG.c.organization_id == org, _LOG.c.seq > after,",
        ".where(_LOG.c.seq > after,",
        (_AUDIT_READS,),
    ),
    Mutation(
        "tenant-audit-verify-hot-rows",
        "src/execstore/audit/reader.py",
        '"WHERE organization_id = $1 AND seq > $2',
        '"WHERE $1::uuid IS NOT NULL AND seq > $2',
        (_AUDIT_READS,),
    ),
    Mutation(
        "tenant-audit-archived-cursor",
        "src/execstore/audit/reader.py",
        "sa.select(PhiAuditChainHead.archived_seq).where(PhiAuditChainHead.organization_id == org)",
        "sa.select(PhiAuditChainHead.archived_seq)",
        (_AUDIT_READS,),
    ),
    Mutation(
        "tenant-audit-archive-org-option",
        "src/execstore/audit/archival.py",
        "            stmt = stmt.where(_HEADS.c.organization_id == organization_id)\n",
        "            stmt = stmt\n",
        (_AUDIT_OPERATORS,),
    ),
    Mutation(
        "tenant-audit-archive-deletes-own-rows",
        "src/execstore/audit/archival.py",
        "                        _LOG.c.organization_id == org,\n"
        "                        _LOG.c.seq >= plan.first,\n",
        "                        _LOG.c.seq >= plan.first,\n",
        (_AUDIT_OPERATORS,),
    ),
    Mutation(
        "tenant-audit-retention-org-option",
        "src/execstore/audit/archival.py",
        "            stmt = stmt.where(PhiAuditArchive.organization_id == organization_id)\n",
        "            stmt = stmt\n",
        (_AUDIT_OPERATORS,),
    ),
    Mutation(
        "cli-interrupt-ignored-between-batches",
        "src/execstore/cli/batch.py",
        "                    stop.check()  # between batches: a signal ends the run here\n",
        "                    pass\n",
        ("tests/cli/test_interrupts.py::test_archive_logs_stops_cleanly_and_a_rerun_completes",),
    ),
    Mutation(
        "cli-interrupt-exit-code",
        "src/execstore/cli/_common.py",
        "    return 128 + signum  # 130 for SIGINT, 143 for SIGTERM, as shells report them\n",
        "    return 1\n",
        ("tests/cli/test_interrupts.py",),
    ),
    Mutation(
        "cli-db-current-behind-exits-0",
        "src/execstore/cli/db.py",
        "        problems=behind,\n",
        "        problems=False,\n",
        (
            "tests/cli/test_db.py::"
            "test_current_names_the_database_exits_3_when_behind_and_creates_nothing",
        ),
    ),
    Mutation(
        "cli-db-failed-upgrade-says-base",
        "src/execstore/cli/db.py",
        "        now = _at(_current(settings))\n",
        "        now = _at(None)\n",
        (
            "tests/cli/test_db.py::test_upgrade_reports_each_step_and_where_a_failure_leaves_the_database",
        ),
    ),
    Mutation(
        "migrations-upgrade-sql-commits",
        "src/execstore/migrations/runner.py",
        "            transaction.rollback()\n",
        "            transaction.commit()\n",
        ("tests/cli/test_db.py::test_upgrade_sql_prints_the_statements_and_changes_nothing",),
    ),
    # -- the lifecycle model (tests/lifecycle): fixed walks onto each boundary with a
    # second organization beside, every invariant of the model checked after each step;
    # and the defects the model found, each pinned by a test of its own.
    Mutation(
        "lifecycle-log-retention-a-day-short",
        "src/execstore/logs/retention.py",
        "        cutoff = moment - dt.timedelta(days=days)\n",
        "        cutoff = moment - dt.timedelta(days=days - 1)\n",
        (_LIFE_LOGS,),
    ),
    Mutation(
        "lifecycle-log-retention-one-setting-for-all",
        "src/execstore/logs/retention.py",
        "return [(org, own.get(org, default_days)) for org in sorted(found, key=str)]",
        "return [(org, default_days) for org in sorted(found, key=str)]",
        (_LIFE_LOGS,),
    ),
    Mutation(
        "lifecycle-log-retention-run-for-one-organization",
        "src/execstore/logs/retention.py",
        "for org, days in await _retentions(sessions, default_days, organization_id):",
        "for org, days in await _retentions(sessions, default_days, None):",
        (_LIFE + "test_log_retention_for_one_organization_leaves_the_others",),
    ),
    Mutation(
        "lifecycle-log-archival-files-lines-per-organization",
        "src/execstore/logs/archival.py",
        "jobs = [job for job, _ in by_org[organization_id]]",
        "jobs = [job for each in by_org.values() for job, _ in each]",
        (_LIFE_LOGS,),
    ),
    Mutation(
        "lifecycle-audit-hot-window-a-day-short",
        "src/execstore/audit/archival.py",
        "    cutoff = clock.now() - dt.timedelta(days=hot_days)\n",
        "    cutoff = clock.now() - dt.timedelta(days=hot_days - 1)\n",
        (_LIFE_AUDIT,),
    ),
    Mutation(
        "lifecycle-audit-archival-run-for-one-organization",
        "src/execstore/audit/archival.py",
        "            stmt = stmt.where(_HEADS.c.organization_id == organization_id)\n",
        "            stmt = stmt\n",
        (_LIFE_AUDIT,),
    ),
    Mutation(
        "lifecycle-audit-retention-finishes-a-killed-delete",
        "src/execstore/audit/archival.py",
        "        if not await archives.store.exists(key):\n            raise\n",
        "        raise\n",
        (
            _LIFE_FIXED
            + "test_audit_retention_killed_after_deleting_a_segment_blob_is_finished_by_"
            "the_next_run",
        ),
    ),
    Mutation(
        "lifecycle-audit-retention-reverifies-the-store",
        "src/execstore/audit/archival.py",
        "        payload = await archives.read_bytes(segment.ref, cached=False)\n",
        "        payload = await archives.read_bytes(segment.ref)\n",
        (_LIFE_FIXED + "test_audit_retention_reverifies_the_segment_the_store_holds",),
    ),
    Mutation(
        "lifecycle-audit-verify-reads-the-store",
        "src/execstore/audit/verify.py",
        "payload = await archives.read_bytes(segment.ref, cached=False)",
        "payload = await archives.read_bytes(segment.ref)",
        (_LIFE_FIXED + "test_verify_reads_segments_from_the_store_not_from_the_cache",),
    ),
    Mutation(
        "lifecycle-cancelled-statement-stays-cancelled",
        "src/execstore/audit/repository.py",
        'if conn.dialect.name == "sqlite" and not conn.invalidated:',
        "if True:",
        (_LIFE_FIXED + "test_a_cancelled_statement_raises_cancelled_error",),
    ),
    Mutation(
        "lifecycle-cancelled-detach-stays-cancelled",
        "src/execstore/logs/archival.py",
        "if not auto.invalidated:  # else closed, and the lock gone with it",
        "if True:",
        (_LIFE_FIXED + "test_log_archival_cancelled_while_detaching_stays_cancelled_and_resumes",),
    ),
    Mutation(
        "lifecycle-reconcile-leaves-a-blob-of-unknown-age",
        "src/execstore/archival/reconcile.py",
        "if written is None or written > cutoff:",
        "if written is not None and written > cutoff:",
        (_LIFE_FIXED + "test_reconcile_never_deletes_a_blob_whose_age_it_cannot_tell",),
    ),
)


@dataclass
class Outcome:
    mutation: Mutation
    verdict: str
    seconds: float
    detail: str = ""


class _Terminated(Exception):
    """SIGTERM, turned into an exception so the finally blocks restore the file."""


def _on_sigterm(signum: int, frame: object) -> None:
    raise _Terminated


def _sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def check_table(mutations: tuple[Mutation, ...]) -> list[str]:
    """Every problem with the table: unknown files, snippets not found exactly once."""
    problems = []
    names = [mutation.name for mutation in mutations]
    for name in sorted({n for n in names if names.count(n) > 1}):
        problems.append(f"{name}: the name is used twice")
    for mutation in mutations:
        path = ROOT / mutation.path
        if not path.is_file():
            problems.append(f"{mutation.name}: {mutation.path} does not exist")
            continue
        found = path.read_text(encoding="utf-8").count(mutation.original)
        if found != 1:
            problems.append(
                f"{mutation.name}: the original snippet occurs {found} times in "
                f"{mutation.path} (must be exactly once)"
            )
        if mutation.original == mutation.replacement:
            problems.append(f"{mutation.name}: the replacement equals the original")
        if not mutation.tests:
            problems.append(f"{mutation.name}: no tests named")
    return problems


def dirty_files(paths: list[str]) -> list[str]:
    """Those of ``paths`` with uncommitted changes (staged, unstaged or untracked)."""
    result = subprocess.run(
        ["git", "status", "--porcelain", "--", *paths],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
    )
    return [line[3:] for line in result.stdout.splitlines() if line.strip()]


def _env() -> dict[str, str]:
    env = dict(os.environ)
    src = str(ROOT / "src")
    env["PYTHONPATH"] = src + (os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else "")
    env["PYTHONDONTWRITEBYTECODE"] = "1"  # no mutant bytecode may outlive its run
    return env


def run_pytest(tests: tuple[str, ...], timeout: float) -> tuple[int | None, str]:
    """pytest's exit code (None on timeout) and its output."""
    command = [sys.executable, "-m", "pytest", "-x", "-q", "-p", "no:cacheprovider", *tests]
    process = subprocess.Popen(
        command,
        cwd=ROOT,
        env=_env(),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,  # its own process group: a timeout kills every child
    )
    try:
        output, _ = process.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        output, _ = process.communicate()
        return None, output
    except BaseException:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait()
        raise
    return process.returncode, output


def _tail(output: str, lines: int = 15) -> str:
    return "\n".join(output.strip().splitlines()[-lines:])


def _first_failure(output: str) -> str:
    """The short summary line of the test that caught the mutant (``-ra`` prints it)."""
    for line in output.splitlines():
        if line.startswith(("FAILED ", "ERROR ")):
            return line
    return ""


def apply_and_test(mutation: Mutation, timeout: float) -> Outcome:
    path = ROOT / mutation.path
    original = path.read_bytes()
    stat = path.stat()
    text = original.decode("utf-8")
    if text.count(mutation.original) != 1:
        raise SystemExit(f"{mutation.name}: the original snippet is no longer found exactly once")
    mutated = text.replace(mutation.original, mutation.replacement, 1).encode("utf-8")
    started = time.monotonic()
    try:
        path.write_bytes(mutated)
        code, output = run_pytest(mutation.tests, timeout)
    finally:
        path.write_bytes(original)
        os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns))
        if _sha(path.read_bytes()) != _sha(original):
            raise SystemExit(f"FATAL: {mutation.path} was not restored; `git diff` it")
    seconds = time.monotonic() - started
    if code is None:
        return Outcome(mutation, "CAUGHT", seconds, f"timed out after {timeout:.0f} s")
    if code == 1:
        return Outcome(mutation, "CAUGHT", seconds, _first_failure(output))
    if code == 0:
        return Outcome(mutation, "SURVIVED", seconds, _tail(output))
    return Outcome(mutation, "ERROR", seconds, f"pytest exit code {code}\n{_tail(output)}")


def print_table(outcomes: list[Outcome]) -> None:
    width = max(len(o.mutation.name) for o in outcomes)
    print(f"\n{'mutation':<{width}}  {'verdict':<8}  {'seconds':>7}  file")
    for o in outcomes:
        print(f"{o.mutation.name:<{width}}  {o.verdict:<8}  {o.seconds:7.1f}  {o.mutation.path}")
    for o in outcomes:
        if o.verdict == "CAUGHT" and o.detail:
            print(f"  {o.mutation.name}: {o.detail[:150]}")
    for o in outcomes:
        if o.verdict != "CAUGHT" and o.detail:
            print(f"\n--- {o.mutation.name}: {o.verdict}\n{o.detail}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--list", action="store_true", help="print the mutations and exit")
    parser.add_argument("--only", nargs="+", metavar="NAME", help="run only these mutations")
    parser.add_argument(
        "--timeout", type=float, default=300, help="seconds per pytest run (default 300)"
    )
    args = parser.parse_args(argv)

    problems = check_table(MUTATIONS)
    if problems:
        print("mutation table is out of date:", *problems, sep="\n  ", file=sys.stderr)
        return 2
    selected = MUTATIONS
    if args.only:
        known = {mutation.name for mutation in MUTATIONS}
        unknown = [name for name in args.only if name not in known]
        if unknown:
            print(f"unknown mutation(s): {', '.join(unknown)}", file=sys.stderr)
            return 2
        selected = tuple(mutation for mutation in MUTATIONS if mutation.name in args.only)
    if args.list:
        for mutation in selected:
            print(f"{mutation.name}  {mutation.path}")
            for test in mutation.tests:
                print(f"    {test}")
        return 0

    dirty = dirty_files(sorted({mutation.path for mutation in selected}))
    if dirty:
        print("refusing to mutate files with uncommitted changes:", *dirty, sep="\n  ")
        return 2

    signal.signal(signal.SIGTERM, _on_sigterm)
    started = time.monotonic()
    baseline = tuple(dict.fromkeys(test for mutation in selected for test in mutation.tests))
    print(f"baseline: {len(baseline)} test selection(s) on the unmodified code ...", flush=True)
    code, output = run_pytest(baseline, args.timeout * 2)
    if code != 0:
        print(f"the tests fail without any mutation (exit {code}); fix that first:")
        print(_tail(output, 40))
        return 2
    outcomes = []
    for index, mutation in enumerate(selected, 1):
        print(f"[{index}/{len(selected)}] {mutation.name} ...", end=" ", flush=True)
        outcome = apply_and_test(mutation, args.timeout)
        print(f"{outcome.verdict} ({outcome.seconds:.1f} s)", flush=True)
        outcomes.append(outcome)
    print_table(outcomes)
    bad = [o for o in outcomes if o.verdict != "CAUGHT"]
    total = time.monotonic() - started
    print(
        f"\n{len(outcomes) - len(bad)} caught, {len(bad)} survived or errored, {total:.0f} s in all"
    )
    return 1 if bad else 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except (KeyboardInterrupt, _Terminated):
        # apply_and_test's finally has restored the file and checked it by then.
        print("\ninterrupted: the mutated file was restored, pytest was stopped", file=sys.stderr)
        sys.exit(130)
