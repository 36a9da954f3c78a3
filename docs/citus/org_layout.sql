-- Layout B: every tenant table distributed by organization_id (Citus's multi-tenant layout),
-- as it ran on Citus 13.2.2 (PostgreSQL 15.20; `make test-citus`'s cluster) on a database
-- migrated to head (commit a3c1f72), empty or holding the examples' data.
-- Not applied by any code: what distributing took, for issue 21. Steps A and C change the
-- schema (the models, and every writer of the six tables that gain organization_id, would have
-- to follow). See README.md here.
-- Run with: psql -X -f org_layout.sql <database on the coordinator>
\set VERBOSITY terse
\set ON_ERROR_STOP 1
SET client_min_messages = warning;
-- A. rows that do not carry the tenant get it (nullable, backfilled, then NOT NULL)
ALTER TABLE execution_progress ADD COLUMN organization_id uuid;
ALTER TABLE execution_rag_rule_uses ADD COLUMN organization_id uuid;
ALTER TABLE execution_screenshots ADD COLUMN organization_id uuid;
ALTER TABLE healing_attempts ADD COLUMN organization_id uuid;
ALTER TABLE job_result_archives ADD COLUMN organization_id uuid;
ALTER TABLE execution_log_partitioned ADD COLUMN organization_id uuid;
UPDATE execution_progress t SET organization_id = j.organization_id FROM jobs j WHERE j.id = t.job_id;
UPDATE execution_rag_rule_uses t SET organization_id = j.organization_id FROM jobs j WHERE j.id = t.job_id;
UPDATE execution_screenshots t SET organization_id = j.organization_id FROM jobs j WHERE j.id = t.job_id;
UPDATE healing_attempts t SET organization_id = j.organization_id FROM jobs j WHERE j.id = t.job_id;
UPDATE job_result_archives t SET organization_id = j.organization_id FROM jobs j WHERE j.id = t.job_id;
UPDATE execution_log_partitioned t SET organization_id = j.organization_id FROM jobs j WHERE j.id = t.job_id;
ALTER TABLE execution_progress ALTER COLUMN organization_id SET NOT NULL;
ALTER TABLE execution_rag_rule_uses ALTER COLUMN organization_id SET NOT NULL;
ALTER TABLE execution_screenshots ALTER COLUMN organization_id SET NOT NULL;
ALTER TABLE healing_attempts ALTER COLUMN organization_id SET NOT NULL;
ALTER TABLE job_result_archives ALTER COLUMN organization_id SET NOT NULL;
ALTER TABLE execution_log_partitioned ALTER COLUMN organization_id SET NOT NULL;
-- B. every foreign key between tenant tables goes through organization_id; drop them all
--    first (PKs they depend on change below), re-add after distribution.
DO $$ DECLARE r record; BEGIN
  FOR r IN SELECT conrelid::regclass AS t, conname FROM pg_constraint
           WHERE contype = 'f' AND connamespace = 'public'::regnamespace AND conparentid = 0
  LOOP EXECUTE format('ALTER TABLE %s DROP CONSTRAINT %I', r.t, r.conname); END LOOP;
END $$;
-- C. primary keys and unique constraints gain organization_id
ALTER TABLE workflows DROP CONSTRAINT pk_workflows, DROP CONSTRAINT uq_workflows_organization_id_id, ADD CONSTRAINT pk_workflows PRIMARY KEY (organization_id, id);
ALTER TABLE clients DROP CONSTRAINT pk_clients, DROP CONSTRAINT uq_clients_organization_id_id, ADD CONSTRAINT pk_clients PRIMARY KEY (organization_id, id);
ALTER TABLE claim_submissions DROP CONSTRAINT pk_claim_submissions, DROP CONSTRAINT uq_claim_submissions_organization_id_id, ADD CONSTRAINT pk_claim_submissions PRIMARY KEY (organization_id, id);
ALTER TABLE credentials DROP CONSTRAINT pk_credentials, DROP CONSTRAINT uq_credentials_organization_id_id, ADD CONSTRAINT pk_credentials PRIMARY KEY (organization_id, id);
ALTER TABLE schedule_executions DROP CONSTRAINT pk_schedule_executions, ADD CONSTRAINT pk_schedule_executions PRIMARY KEY (organization_id, id);
ALTER TABLE healing_suggestions DROP CONSTRAINT pk_healing_suggestions, ADD CONSTRAINT pk_healing_suggestions PRIMARY KEY (organization_id, id);
ALTER TABLE jobs DROP CONSTRAINT pk_jobs, ADD CONSTRAINT pk_jobs PRIMARY KEY (organization_id, id);
ALTER TABLE execution_metadata DROP CONSTRAINT pk_execution_metadata, ADD CONSTRAINT pk_execution_metadata PRIMARY KEY (organization_id, job_id);
ALTER TABLE execution_progress DROP CONSTRAINT pk_execution_progress, ADD CONSTRAINT pk_execution_progress PRIMARY KEY (organization_id, job_id);
ALTER TABLE execution_rag_context DROP CONSTRAINT pk_execution_rag_context, ADD CONSTRAINT pk_execution_rag_context PRIMARY KEY (organization_id, job_id);
ALTER TABLE job_result_archives DROP CONSTRAINT pk_job_result_archives, ADD CONSTRAINT pk_job_result_archives PRIMARY KEY (organization_id, job_id);
ALTER TABLE healing_attempts DROP CONSTRAINT pk_healing_attempts, ADD CONSTRAINT pk_healing_attempts PRIMARY KEY (organization_id, job_id, id);
ALTER TABLE rag_rule_catalog DROP CONSTRAINT pk_rag_rule_catalog, ADD CONSTRAINT pk_rag_rule_catalog PRIMARY KEY (organization_id, id);
ALTER TABLE rag_payer_catalog DROP CONSTRAINT pk_rag_payer_catalog, ADD CONSTRAINT pk_rag_payer_catalog PRIMARY KEY (organization_id, id);
ALTER TABLE rag_modifier_catalog DROP CONSTRAINT pk_rag_modifier_catalog, ADD CONSTRAINT pk_rag_modifier_catalog PRIMARY KEY (organization_id, id);
ALTER TABLE phi_audit_catalog DROP CONSTRAINT pk_phi_audit_catalog, ADD CONSTRAINT pk_phi_audit_catalog PRIMARY KEY (organization_id, id);
ALTER TABLE execution_log_archives DROP CONSTRAINT pk_execution_log_archives, DROP CONSTRAINT uq_execution_log_archives_blob_key, ADD CONSTRAINT pk_execution_log_archives PRIMARY KEY (organization_id, id), ADD CONSTRAINT uq_execution_log_archives_blob_key UNIQUE (organization_id, blob_key);
ALTER TABLE phi_audit_archives DROP CONSTRAINT pk_phi_audit_archives, DROP CONSTRAINT uq_phi_audit_archives_blob_key, ADD CONSTRAINT pk_phi_audit_archives PRIMARY KEY (organization_id, id), ADD CONSTRAINT uq_phi_audit_archives_blob_key UNIQUE (organization_id, blob_key);
-- D. distribute: the tenant table by its id, every tenant table by organization_id beside it
SET citus.enable_unsafe_triggers = on;
SELECT create_distributed_table('organizations', 'id');
-- (what the triggers write or read first: distributing a table copies its rows into the
-- shards, which fires the shards' triggers, and those need their target to exist there)
SELECT create_distributed_table(t, 'organization_id', colocate_with => 'organizations') FROM unnest(ARRAY[
  'execution_daily_summary', 'execution_summary_dirty', 'phi_audit_archives',
  'workflows', 'clients', 'claim_submissions', 'credentials', 'schedule_executions',
  'healing_suggestions', 'jobs', 'execution_metadata', 'execution_progress',
  'execution_rag_context', 'execution_rag_rule_uses', 'job_result_archives',
  'execution_screenshots', 'healing_attempts', 'execution_log_partitioned',
  'rag_rule_catalog', 'rag_payer_catalog', 'rag_modifier_catalog',
  'execution_log_archives', 'execution_log_retention',
  'phi_audit_log', 'phi_audit_chain_heads', 'phi_audit_checkpoints',
  'phi_audit_dictionaries', 'phi_audit_catalog'
]) AS t;
RESET citus.enable_unsafe_triggers;
SELECT create_reference_table(t) FROM unnest(ARRAY[
  'execution_log_steps', 'execution_metadata_state', 'rag_counters']) AS t;
-- E. the foreign keys back, each through organization_id
ALTER TABLE workflows ADD FOREIGN KEY (organization_id) REFERENCES organizations(id);
ALTER TABLE clients ADD FOREIGN KEY (organization_id) REFERENCES organizations(id);
ALTER TABLE credentials ADD FOREIGN KEY (organization_id) REFERENCES organizations(id);
ALTER TABLE claim_submissions ADD FOREIGN KEY (organization_id, client_id) REFERENCES clients(organization_id, id);
ALTER TABLE schedule_executions ADD FOREIGN KEY (organization_id, workflow_id) REFERENCES workflows(organization_id, id);
ALTER TABLE healing_suggestions ADD FOREIGN KEY (organization_id, workflow_id) REFERENCES workflows(organization_id, id);
ALTER TABLE jobs ADD FOREIGN KEY (organization_id, workflow_id) REFERENCES workflows(organization_id, id);
ALTER TABLE jobs ADD FOREIGN KEY (organization_id, client_id) REFERENCES clients(organization_id, id);
ALTER TABLE jobs ADD FOREIGN KEY (organization_id, claim_submission_id) REFERENCES claim_submissions(organization_id, id);
ALTER TABLE execution_metadata ADD FOREIGN KEY (organization_id, job_id) REFERENCES jobs(organization_id, id) ON DELETE CASCADE;
ALTER TABLE execution_metadata ADD FOREIGN KEY (organization_id, workflow_id) REFERENCES workflows(organization_id, id);
ALTER TABLE execution_metadata ADD FOREIGN KEY (organization_id, client_id) REFERENCES clients(organization_id, id);
ALTER TABLE execution_metadata ADD FOREIGN KEY (organization_id, claim_submission_id) REFERENCES claim_submissions(organization_id, id);
ALTER TABLE execution_metadata ADD FOREIGN KEY (organization_id, primary_account_id) REFERENCES credentials(organization_id, id);
ALTER TABLE execution_progress ADD FOREIGN KEY (organization_id, job_id) REFERENCES execution_metadata(organization_id, job_id) ON DELETE CASCADE;
ALTER TABLE execution_rag_context ADD FOREIGN KEY (organization_id, job_id) REFERENCES jobs(organization_id, id) ON DELETE CASCADE;
ALTER TABLE execution_rag_rule_uses ADD FOREIGN KEY (organization_id, job_id) REFERENCES execution_rag_context(organization_id, job_id) ON DELETE CASCADE;
ALTER TABLE execution_screenshots ADD FOREIGN KEY (organization_id, job_id) REFERENCES jobs(organization_id, id) ON DELETE CASCADE;
ALTER TABLE healing_attempts ADD FOREIGN KEY (organization_id, job_id) REFERENCES jobs(organization_id, id) ON DELETE CASCADE;
ALTER TABLE job_result_archives ADD FOREIGN KEY (organization_id, job_id) REFERENCES jobs(organization_id, id) ON DELETE CASCADE;
ALTER TABLE rag_rule_catalog ADD FOREIGN KEY (organization_id) REFERENCES organizations(id) ON DELETE CASCADE;
ALTER TABLE rag_payer_catalog ADD FOREIGN KEY (organization_id) REFERENCES organizations(id) ON DELETE CASCADE;
ALTER TABLE rag_modifier_catalog ADD FOREIGN KEY (organization_id) REFERENCES organizations(id) ON DELETE CASCADE;
ALTER TABLE execution_log_archives ADD FOREIGN KEY (organization_id) REFERENCES organizations(id);
ALTER TABLE execution_log_retention ADD FOREIGN KEY (organization_id) REFERENCES organizations(id) ON DELETE CASCADE;
-- Check: 33 distributed tables in one co-location group, 3 reference tables.
SELECT CASE partmethod WHEN 'h' THEN 'distributed' ELSE CASE repmodel WHEN 't' THEN 'reference'
       ELSE 'citus local' END END AS kind, colocationid, count(*)
FROM pg_dist_partition GROUP BY 1, 2 ORDER BY 2;
