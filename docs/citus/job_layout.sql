-- Layout A: the per-job plan of src/execstore/schema/distribution.py, as it ran on Citus 13.2.2
-- (PostgreSQL 15.20; a coordinator and two workers from `make test-citus`'s support code) on a
-- database migrated to head (commit a3c1f72), empty or holding the examples' data.
-- Not applied by any code: what distributing took, for issue 21. See README.md here for what
-- still fails at run time and which application changes that needs.
-- Run with: psql -X -f job_layout.sql <database on the coordinator>
\set VERBOSITY terse
\set ON_ERROR_STOP 1
SET client_min_messages = warning;
-- 1. the job group's own foreign keys go for the time of distribution: creating the
--    reference tables turns every local table with an FK to them into a Citus local
--    table, and a Citus local table that other Citus local tables reference cannot be
--    distributed.
ALTER TABLE execution_metadata DROP CONSTRAINT fk_execution_metadata_job_id_jobs;
ALTER TABLE execution_rag_context DROP CONSTRAINT fk_execution_rag_context_job_id_jobs;
ALTER TABLE execution_screenshots DROP CONSTRAINT fk_execution_screenshots_job_id_jobs;
ALTER TABLE healing_attempts DROP CONSTRAINT fk_healing_attempts_job_id_jobs;
ALTER TABLE job_result_archives DROP CONSTRAINT fk_job_result_archives_job_id_jobs;
ALTER TABLE execution_progress DROP CONSTRAINT fk_execution_progress_job_id_execution_metadata;
ALTER TABLE execution_rag_rule_uses DROP CONSTRAINT fk_execution_rag_rule_uses_job_id_execution_rag_context;
-- 2. the summaries' triggers write across co-location groups (and TRUNCATE's deletes
--    every shard): dropped, `execstore maintain --rebuild-summaries` recomputes instead.
DROP TRIGGER execution_metadata_summary_insert_delete ON execution_metadata;
DROP TRIGGER execution_metadata_summary_update ON execution_metadata;
DROP TRIGGER execution_metadata_summary_truncate ON execution_metadata;
-- 3. reference tables
SELECT create_reference_table(t) FROM unnest(ARRAY[
  'organizations', 'workflows', 'clients', 'claim_submissions', 'credentials',
  'schedule_executions', 'healing_suggestions', 'rag_rule_catalog', 'rag_payer_catalog',
  'rag_modifier_catalog', 'execution_log_steps', 'phi_audit_catalog', 'execution_log_archives',
  'phi_audit_archives', 'execution_log_retention', 'execution_metadata_state', 'rag_counters'
]) AS t;
-- 4. the job group
SELECT create_distributed_table('jobs', 'id');
SELECT create_distributed_table(t, 'job_id', colocate_with => 'jobs') FROM unnest(ARRAY[
  'execution_metadata', 'execution_progress', 'execution_rag_context',
  'execution_rag_rule_uses', 'job_result_archives', 'execution_screenshots',
  'healing_attempts', 'execution_log_partitioned'
]) AS t;
-- 5. the organization group, in a co-location group of its own: by default Citus puts it in
--    the jobs' group (same column type, same shard count), and then moving a jobs shard
--    moves audit shards with it. The audit trigger reads only its own row and the
--    phi_audit_archives reference table (a local task on every node), which Citus allows
--    once told to.
SET citus.enable_unsafe_triggers = on;
SELECT create_distributed_table('phi_audit_log', 'organization_id', colocate_with => 'none');
RESET citus.enable_unsafe_triggers;
SELECT create_distributed_table(t, 'organization_id', colocate_with => 'phi_audit_log')
FROM unnest(ARRAY['phi_audit_chain_heads', 'phi_audit_checkpoints', 'phi_audit_dictionaries',
                  'execution_daily_summary', 'execution_summary_dirty']) AS t;
-- 6. the job group's foreign keys back (both sides distributed, co-located, on job_id)
ALTER TABLE execution_metadata ADD CONSTRAINT fk_execution_metadata_job_id_jobs FOREIGN KEY (job_id) REFERENCES jobs(id) ON DELETE CASCADE;
ALTER TABLE execution_rag_context ADD CONSTRAINT fk_execution_rag_context_job_id_jobs FOREIGN KEY (job_id) REFERENCES jobs(id) ON DELETE CASCADE;
ALTER TABLE execution_screenshots ADD CONSTRAINT fk_execution_screenshots_job_id_jobs FOREIGN KEY (job_id) REFERENCES jobs(id) ON DELETE CASCADE;
ALTER TABLE healing_attempts ADD CONSTRAINT fk_healing_attempts_job_id_jobs FOREIGN KEY (job_id) REFERENCES jobs(id) ON DELETE CASCADE;
ALTER TABLE job_result_archives ADD CONSTRAINT fk_job_result_archives_job_id_jobs FOREIGN KEY (job_id) REFERENCES jobs(id) ON DELETE CASCADE;
ALTER TABLE execution_progress ADD CONSTRAINT fk_execution_progress_job_id_execution_metadata FOREIGN KEY (job_id) REFERENCES execution_metadata(job_id) ON DELETE CASCADE;
ALTER TABLE execution_rag_rule_uses ADD CONSTRAINT fk_execution_rag_rule_uses_job_id_execution_rag_context FOREIGN KEY (job_id) REFERENCES execution_rag_context(job_id) ON DELETE CASCADE;
-- Check: 17 reference tables, the job group (13 incl. partitions), the organization group (6);
-- alembic_version and the 4 coordinator-only tables stay plain local tables.
SELECT CASE partmethod WHEN 'h' THEN 'distributed' ELSE CASE repmodel WHEN 't' THEN 'reference'
       ELSE 'citus local' END END AS kind, colocationid, count(*)
FROM pg_dist_partition GROUP BY 1, 2 ORDER BY 2;
