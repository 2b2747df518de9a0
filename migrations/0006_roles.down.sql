-- Undo 0006. The roles stay: they are cluster-wide and other databases may use them
-- (DROP ROLE muwa_enqueuer, muwa_dashboard, muwa_worker once no database needs them).
REVOKE ALL ON ALL TABLES IN SCHEMA muwa FROM muwa_enqueuer, muwa_dashboard, muwa_worker;
REVOKE ALL ON ALL SEQUENCES IN SCHEMA muwa FROM muwa_enqueuer, muwa_dashboard, muwa_worker;
REVOKE ALL ON ALL FUNCTIONS IN SCHEMA muwa FROM muwa_enqueuer, muwa_dashboard, muwa_worker;
REVOKE ALL ON SCHEMA muwa FROM muwa_enqueuer, muwa_dashboard, muwa_worker;
DROP POLICY IF EXISTS job_outputs_enqueuer ON muwa.job_outputs;
DROP POLICY IF EXISTS job_outputs_dashboard ON muwa.job_outputs;
DROP POLICY IF EXISTS job_outputs_worker ON muwa.job_outputs;
ALTER TABLE muwa.job_outputs DISABLE ROW LEVEL SECURITY;
DROP POLICY IF EXISTS jobs_enqueuer_insert ON muwa.jobs;
DROP POLICY IF EXISTS jobs_enqueuer_read ON muwa.jobs;
DROP POLICY IF EXISTS jobs_dashboard ON muwa.jobs;
DROP POLICY IF EXISTS jobs_worker ON muwa.jobs;
ALTER TABLE muwa.jobs DISABLE ROW LEVEL SECURITY;

ALTER FUNCTION muwa.enqueue(text, jsonb, text, integer, timestamptz, integer, text, interval) SECURITY INVOKER RESET ALL;
GRANT EXECUTE ON FUNCTION muwa.enqueue(text, jsonb, text, integer, timestamptz, integer, text, interval),
                          muwa.cancel(bigint), muwa.retry(bigint) TO PUBLIC;

-- 0003's cancel and retry.
CREATE OR REPLACE FUNCTION muwa.cancel(job_id bigint) RETURNS text
LANGUAGE plpgsql SECURITY INVOKER AS $$
DECLARE
    current_status text;
BEGIN
    UPDATE muwa.jobs SET status = 'cancelled', finished_at = now()
    WHERE id = job_id AND status = 'queued';
    IF FOUND THEN
        RETURN 'cancelled';
    END IF;
    UPDATE muwa.jobs SET cancel_requested = true
    WHERE id = job_id AND status = 'running' AND NOT cancel_requested;
    IF FOUND THEN
        RETURN 'cancel_requested';
    END IF;
    SELECT status INTO current_status FROM muwa.jobs WHERE id = job_id;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'muwa.cancel: no job with id %', job_id USING ERRCODE = 'no_data_found';
    END IF;
    RETURN CASE WHEN current_status = 'running' THEN 'cancel_requested' ELSE current_status END;
END;
$$;
ALTER FUNCTION muwa.cancel(bigint) RESET ALL;

CREATE OR REPLACE FUNCTION muwa.retry(job_id bigint) RETURNS boolean
LANGUAGE plpgsql SECURITY INVOKER AS $$
BEGIN
    UPDATE muwa.jobs
    SET status = 'queued', run_at = now(), finished_at = NULL, cancel_requested = false,
        progress = NULL, progress_detail = NULL, result = NULL,
        max_attempts = greatest(max_attempts, attempt + 1)
    WHERE id = job_id AND status IN ('failed', 'cancelled');
    IF FOUND THEN
        RETURN true;
    END IF;
    IF NOT EXISTS (SELECT 1 FROM muwa.jobs WHERE id = job_id) THEN
        RAISE EXCEPTION 'muwa.retry: no job with id %', job_id USING ERRCODE = 'no_data_found';
    END IF;
    RETURN false;
END;
$$;
ALTER FUNCTION muwa.retry(bigint) RESET ALL;

DROP FUNCTION IF EXISTS muwa.may_manage_job(text);
ALTER TABLE muwa.jobs DROP COLUMN IF EXISTS created_by;
