-- 0006 roles: three group roles, and what each may do. Roles are cluster-wide, so they are created only when
-- missing (a second database, or a re-run, finds them); grants and policies are per database.
--
--   muwa_enqueuer   muwa.enqueue / muwa.cancel / muwa.retry (SECURITY DEFINER), a plain INSERT of the
--                   columns a caller may choose (kind, queue, payload, priority, run_at, max_attempts,
--                   unique_key, time_limit), and SELECT on its own jobs only (row-level security on created_by)
--   muwa_dashboard  the views, muwa.workers, muwa.adapters, muwa.job_runs, muwa.job_outputs, and every column of
--                   muwa.jobs except payload and checkpoint (GRANT SELECT (payload) ON muwa.jobs TO
--                   muwa_dashboard for panels that label jobs by their payload)
--   muwa_worker     what `muwad serve` / `status` / `bench-queue` need: read and write the muwa tables
--
-- Give a login role one of them:  CREATE ROLE alice LOGIN; GRANT muwa_enqueuer TO alice;
-- A role may cancel and retry the jobs it enqueued, and those enqueued by roles it is a member of
-- (GRANT alice TO bob lets bob manage alice's jobs); members of the schema's owner may manage every job.
-- The role that runs migrations owns the tables and functions, and needs CREATEROLE the first time.

DO $$
DECLARE
    name text;
BEGIN
    FOREACH name IN ARRAY ARRAY['muwa_enqueuer', 'muwa_dashboard', 'muwa_worker'] LOOP
        IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = name) THEN
            BEGIN
                EXECUTE format('CREATE ROLE %I NOLOGIN', name);
            EXCEPTION
                WHEN duplicate_object OR unique_violation THEN
                    NULL;  -- created meanwhile by a migration of another database
                WHEN insufficient_privilege THEN
                    RAISE EXCEPTION 'migration 0006_roles: role % does not exist and this role may not create it', name
                        USING HINT = format('ask an administrator to run: CREATE ROLE %I NOLOGIN; then migrate again', name);
            END;
        END IF;
    END LOOP;
END;
$$;

-- Who enqueued a job: the session's login role (muwa.enqueue is SECURITY DEFINER, so current_user there is
-- the owner; session_user is the caller).
ALTER TABLE muwa.jobs ADD COLUMN created_by text NOT NULL DEFAULT session_user;

-- May the session's role manage (cancel, retry, read) jobs enqueued by `creator`?
CREATE FUNCTION muwa.may_manage_job(creator text) RETURNS boolean
LANGUAGE sql STABLE SET search_path = pg_catalog, muwa, pg_temp AS $$
    SELECT creator = session_user
        OR EXISTS (SELECT 1 FROM pg_catalog.pg_roles r
                   WHERE r.rolname = creator AND pg_catalog.pg_has_role(session_user, r.oid, 'MEMBER'))
        OR pg_catalog.pg_has_role(
               session_user,
               (SELECT c.relowner FROM pg_catalog.pg_class c WHERE c.oid = 'muwa.jobs'::pg_catalog.regclass), 'MEMBER')
$$;

COMMENT ON FUNCTION muwa.may_manage_job IS 'True when the session role enqueued the job, is a member of the role that did, or of the owner of muwa.jobs.';

-- The SQL API runs with its owner's rights, on a fixed search_path, checking ownership itself. pg_temp is
-- listed last (unlisted, it would be searched first for tables, so a caller's temporary table could stand
-- in for a catalog), and every table is schema-qualified.
ALTER FUNCTION muwa.enqueue(text, jsonb, text, integer, timestamptz, integer, text, interval)
    SECURITY DEFINER SET search_path = pg_catalog, muwa, pg_temp;

CREATE OR REPLACE FUNCTION muwa.cancel(job_id bigint) RETURNS text
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, muwa, pg_temp AS $$
DECLARE
    current_status text;
    creator text;
BEGIN
    SELECT j.status, j.created_by INTO current_status, creator FROM muwa.jobs j WHERE j.id = cancel.job_id;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'muwa.cancel: no job with id %', job_id USING ERRCODE = 'no_data_found';
    END IF;
    IF NOT muwa.may_manage_job(creator) THEN
        RAISE EXCEPTION 'muwa.cancel: permission denied for job %: another role enqueued it', job_id
            USING ERRCODE = 'insufficient_privilege',
                  HINT = 'a role may cancel the jobs it enqueued and those of roles it is a member of';
    END IF;
    UPDATE muwa.jobs SET status = 'cancelled', finished_at = now()
    WHERE id = job_id AND status = 'queued';
    IF FOUND THEN
        RETURN 'cancelled';
    END IF;
    -- Running: the worker sees the flag (NOTIFY, then its next heartbeat) and stops at a safe point.
    UPDATE muwa.jobs SET cancel_requested = true
    WHERE id = job_id AND status = 'running' AND NOT cancel_requested;
    IF FOUND THEN
        RETURN 'cancel_requested';
    END IF;
    SELECT status INTO current_status FROM muwa.jobs WHERE id = job_id;
    RETURN CASE WHEN current_status = 'running' THEN 'cancel_requested' ELSE current_status END;
END;
$$;

CREATE OR REPLACE FUNCTION muwa.retry(job_id bigint) RETURNS boolean
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, muwa, pg_temp AS $$
DECLARE
    creator text;
BEGIN
    SELECT j.created_by INTO creator FROM muwa.jobs j WHERE j.id = retry.job_id;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'muwa.retry: no job with id %', job_id USING ERRCODE = 'no_data_found';
    END IF;
    IF NOT muwa.may_manage_job(creator) THEN
        RAISE EXCEPTION 'muwa.retry: permission denied for job %: another role enqueued it', job_id
            USING ERRCODE = 'insufficient_privilege',
                  HINT = 'a role may retry the jobs it enqueued and those of roles it is a member of';
    END IF;
    UPDATE muwa.jobs
    SET status = 'queued', run_at = now(), finished_at = NULL, cancel_requested = false,
        progress = NULL, progress_detail = NULL, result = NULL,
        max_attempts = greatest(max_attempts, attempt + 1)   -- the error history is kept
    WHERE id = job_id AND status IN ('failed', 'cancelled');
    RETURN FOUND;
END;
$$;

REVOKE ALL ON FUNCTION muwa.enqueue(text, jsonb, text, integer, timestamptz, integer, text, interval) FROM PUBLIC;
REVOKE ALL ON FUNCTION muwa.cancel(bigint) FROM PUBLIC;
REVOKE ALL ON FUNCTION muwa.retry(bigint) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION muwa.enqueue(text, jsonb, text, integer, timestamptz, integer, text, interval),
                          muwa.cancel(bigint), muwa.retry(bigint)
    TO muwa_enqueuer, muwa_worker;

-- Row-level security: the owner (who runs migrations, and a daemon running as the owner) is not subject
-- to it, nor are views (they run with the owner's rights); the roles below are.
ALTER TABLE muwa.jobs ENABLE ROW LEVEL SECURITY;
CREATE POLICY jobs_worker ON muwa.jobs FOR ALL TO muwa_worker USING (true) WITH CHECK (true);
CREATE POLICY jobs_dashboard ON muwa.jobs FOR SELECT TO muwa_dashboard USING (true);
CREATE POLICY jobs_enqueuer_read ON muwa.jobs FOR SELECT TO muwa_enqueuer USING (muwa.may_manage_job(created_by));
CREATE POLICY jobs_enqueuer_insert ON muwa.jobs FOR INSERT TO muwa_enqueuer
    WITH CHECK (created_by = session_user AND status = 'queued' AND attempt = 0 AND worker_id IS NULL
                AND lease_expires_at IS NULL AND result IS NULL AND checkpoint IS NULL AND errors = '[]'
                AND NOT cancel_requested AND progress IS NULL);

ALTER TABLE muwa.job_outputs ENABLE ROW LEVEL SECURITY;
CREATE POLICY job_outputs_worker ON muwa.job_outputs FOR ALL TO muwa_worker USING (true) WITH CHECK (true);
CREATE POLICY job_outputs_dashboard ON muwa.job_outputs FOR SELECT TO muwa_dashboard USING (true);
-- The subquery sees only the enqueuer's own jobs (muwa.jobs' policy applies to it).
CREATE POLICY job_outputs_enqueuer ON muwa.job_outputs FOR SELECT TO muwa_enqueuer
    USING (EXISTS (SELECT 1 FROM muwa.jobs j WHERE j.id = job_outputs.job_id));

GRANT USAGE ON SCHEMA muwa TO muwa_enqueuer, muwa_dashboard, muwa_worker;

-- muwa_enqueuer
GRANT SELECT ON muwa.jobs, muwa.job_outputs, muwa.job_kinds, muwa.adapters TO muwa_enqueuer;
GRANT INSERT (kind, queue, payload, priority, run_at, max_attempts, unique_key, time_limit) ON muwa.jobs TO muwa_enqueuer;
GRANT USAGE ON SEQUENCE muwa.jobs_id_seq TO muwa_enqueuer;

-- muwa_dashboard
GRANT SELECT (id, kind, queue, status, priority, run_at, attempt, max_attempts, time_limit, unique_key, worker_id,
              lease_expires_at, heartbeat_at, progress, progress_detail, result, errors, cancel_requested,
              created_at, started_at, finished_at, created_by)
    ON muwa.jobs TO muwa_dashboard;
GRANT SELECT ON muwa.job_kinds, muwa.job_runs, muwa.job_outputs, muwa.job_events, muwa.workers, muwa.adapters,
                muwa.queue_depth, muwa.throughput_hourly, muwa.attempts_hourly, muwa.running_jobs,
                muwa.recent_failures, muwa.generations, muwa.train_log, muwa.eval_results, muwa.eval_samples,
                muwa.model_comparison
    TO muwa_dashboard;

-- muwa_worker
GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA muwa TO muwa_worker;
GRANT USAGE, SELECT, UPDATE ON ALL SEQUENCES IN SCHEMA muwa TO muwa_worker;
