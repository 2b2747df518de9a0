-- 0003 SQL API: enqueue, cancel and retry from plain SQL, and NOTIFY on the 'muwa_jobs' channel so idle
-- workers wake at once (they also poll, so a lost notification only delays a job).
--
--   SELECT muwa.enqueue('ping', '{"sleep_ms": 100}');
--   SELECT muwa.enqueue('generate', '{"model": "/srv/models/opt-125m", "prompt": "Hello"}',
--                       priority => -1, run_at => now() + interval '1 hour', unique_key => 'daily-hello');
--   SELECT muwa.cancel(42);   -- 'cancelled' (was queued), 'cancel_requested' (running), or the final status
--   SELECT muwa.retry(42);    -- true when a failed/cancelled job went back to the queue
--
-- A plain INSERT INTO muwa.jobs (kind, payload) works too: the foreign key and CHECKs reject bad rows.

CREATE FUNCTION muwa.enqueue(
    kind         text,
    payload      jsonb       DEFAULT '{}',
    queue        text        DEFAULT 'default',
    priority     integer     DEFAULT 0,
    run_at       timestamptz DEFAULT now(),
    max_attempts integer     DEFAULT 3,
    unique_key   text        DEFAULT NULL,
    time_limit   interval    DEFAULT NULL
) RETURNS bigint
LANGUAGE plpgsql AS $$
#variable_conflict use_column
DECLARE
    new_id bigint;
BEGIN
    IF NOT EXISTS (SELECT 1 FROM muwa.job_kinds k WHERE k.kind = enqueue.kind) THEN
        RAISE EXCEPTION 'muwa.enqueue: unknown job kind %', coalesce(quote_literal(enqueue.kind), 'NULL')
            USING ERRCODE = 'invalid_parameter_value',
                  HINT = 'known kinds: ' || (SELECT string_agg(k.kind, ', ' ORDER BY k.kind) FROM muwa.job_kinds k);
    END IF;
    IF enqueue.payload IS NULL OR jsonb_typeof(enqueue.payload) <> 'object' THEN
        RAISE EXCEPTION 'muwa.enqueue: payload must be a JSON object, got %',
            coalesce(jsonb_typeof(enqueue.payload), 'NULL')
            USING ERRCODE = 'invalid_parameter_value',
                  HINT = 'for example {"prompt": "Hello", "model": "/srv/models/opt-125m"}';
    END IF;
    IF enqueue.max_attempts IS NULL OR enqueue.max_attempts NOT BETWEEN 1 AND 1000 THEN
        RAISE EXCEPTION 'muwa.enqueue: max_attempts must be between 1 and 1000, got %', enqueue.max_attempts
            USING ERRCODE = 'invalid_parameter_value';
    END IF;
    IF enqueue.priority IS NULL OR enqueue.priority NOT BETWEEN -32768 AND 32767 THEN
        RAISE EXCEPTION 'muwa.enqueue: priority must be a smallint, got %', enqueue.priority
            USING ERRCODE = 'invalid_parameter_value';
    END IF;

    -- Unique jobs: a live job with the same key wins; its id is returned. The loop covers the race where
    -- that job finishes between our INSERT and SELECT.
    FOR i IN 1..3 LOOP
        INSERT INTO muwa.jobs (kind, payload, queue, priority, run_at, max_attempts, unique_key, time_limit)
        VALUES (enqueue.kind, enqueue.payload, coalesce(enqueue.queue, 'default'), enqueue.priority,
                coalesce(enqueue.run_at, now()), enqueue.max_attempts, enqueue.unique_key, enqueue.time_limit)
        ON CONFLICT (unique_key) WHERE unique_key IS NOT NULL AND status IN ('queued', 'running') DO NOTHING
        RETURNING id INTO new_id;
        IF new_id IS NOT NULL THEN
            RETURN new_id;
        END IF;
        SELECT j.id INTO new_id FROM muwa.jobs j
        WHERE j.unique_key = enqueue.unique_key AND j.status IN ('queued', 'running');
        IF new_id IS NOT NULL THEN
            RETURN new_id;
        END IF;
    END LOOP;
    RAISE EXCEPTION 'muwa.enqueue: could not enqueue unique job %', enqueue.unique_key;
END;
$$;

COMMENT ON FUNCTION muwa.enqueue IS 'Queues a job and returns its id (the existing id for a live duplicate unique_key).';

CREATE FUNCTION muwa.cancel(job_id bigint) RETURNS text
LANGUAGE plpgsql AS $$
DECLARE
    current_status text;
BEGIN
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
    IF NOT FOUND THEN
        RAISE EXCEPTION 'muwa.cancel: no job with id %', job_id USING ERRCODE = 'no_data_found';
    END IF;
    RETURN CASE WHEN current_status = 'running' THEN 'cancel_requested' ELSE current_status END;
END;
$$;

COMMENT ON FUNCTION muwa.cancel IS 'Cancels a queued job now, or asks the worker of a running job to stop it.';

CREATE FUNCTION muwa.retry(job_id bigint) RETURNS boolean
LANGUAGE plpgsql AS $$
BEGIN
    UPDATE muwa.jobs
    SET status = 'queued', run_at = now(), finished_at = NULL, cancel_requested = false,
        progress = NULL, progress_detail = NULL, result = NULL,
        max_attempts = greatest(max_attempts, attempt + 1)   -- the error history is kept
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

COMMENT ON FUNCTION muwa.retry IS 'Puts a failed or cancelled job back in the queue with one more attempt allowed.';

-- NOTIFY payloads: 'queued <queue> <kind>' (identical payloads in one transaction collapse into one)
-- and 'cancel <id>'.
CREATE FUNCTION muwa.notify_jobs() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    IF NEW.status = 'queued' AND NEW.run_at <= now() + interval '1 second'
       AND (TG_OP = 'INSERT' OR OLD.status IS DISTINCT FROM 'queued') THEN
        PERFORM pg_notify('muwa_jobs', 'queued ' || NEW.queue || ' ' || NEW.kind);
    ELSIF TG_OP = 'UPDATE' AND NEW.cancel_requested AND NOT OLD.cancel_requested THEN
        PERFORM pg_notify('muwa_jobs', 'cancel ' || NEW.id);
    END IF;
    RETURN NULL;
END;
$$;

CREATE TRIGGER jobs_notify
    AFTER INSERT OR UPDATE OF status, cancel_requested ON muwa.jobs
    FOR EACH ROW EXECUTE FUNCTION muwa.notify_jobs();
