-- 0009 schedules: periodic jobs (Oban's cron plugin, River's periodic jobs). A schedule enqueues one job of
-- its kind and payload at every cron time (UTC); workers take turns through FOR UPDATE SKIP LOCKED, so each
-- time gets exactly one job however many workers run. A time missed while no worker ran is not caught up:
-- the next job is for the next time after now.
--
--   SELECT muwa.schedule('nightly-eval', '0 3 * * *', 'evaluate', '{"model": "opt-1.3b", "task": "piqa", …}');
--   SELECT muwa.unschedule('nightly-eval');
--   SELECT name, cron, next_run_at, last_job_id, last_error FROM muwa.schedules;

CREATE TABLE muwa.schedules (
    name             text        PRIMARY KEY CONSTRAINT schedules_name CHECK (name ~ '^[A-Za-z0-9_.:-]{1,64}$'),
    cron             text        NOT NULL,
    kind             text        NOT NULL REFERENCES muwa.job_kinds (kind),
    payload          jsonb       NOT NULL DEFAULT '{}'
                                 CONSTRAINT schedules_payload_is_object CHECK (jsonb_typeof(payload) = 'object'),
    queue            text        NOT NULL DEFAULT 'default' CONSTRAINT schedules_queue CHECK (queue ~ '^[A-Za-z0-9_.:-]{1,64}$'),
    priority         smallint    NOT NULL DEFAULT 0,
    max_attempts     integer     NOT NULL DEFAULT 3 CONSTRAINT schedules_max_attempts CHECK (max_attempts BETWEEN 1 AND 1000),
    enabled          boolean     NOT NULL DEFAULT true,
    next_run_at      timestamptz,              -- NULL: a worker computes it from cron
    last_enqueued_at timestamptz,
    last_job_id      bigint,
    last_error       text,                     -- e.g. a cron expression the workers cannot read
    created_by       text        NOT NULL DEFAULT session_user,
    updated_at       timestamptz NOT NULL DEFAULT now()
);

CREATE FUNCTION muwa.schedule(
    name text, cron text, kind text, payload jsonb DEFAULT '{}', queue text DEFAULT 'default',
    priority integer DEFAULT 0, max_attempts integer DEFAULT 3
) RETURNS void
LANGUAGE plpgsql AS $$
#variable_conflict use_column
BEGIN
    IF schedule.cron IS NULL OR (schedule.cron !~ '^\s*@[a-z]+\s*$'
                                 AND array_length(regexp_split_to_array(trim(schedule.cron), '\s+'), 1) <> 5) THEN
        RAISE EXCEPTION 'muwa.schedule: cron % must have 5 fields (minute hour day month weekday) or be a macro such as @daily',
            coalesce(quote_literal(schedule.cron), 'NULL') USING ERRCODE = 'invalid_parameter_value';
    END IF;
    INSERT INTO muwa.schedules AS s (name, cron, kind, payload, queue, priority, max_attempts)
    VALUES (schedule.name, trim(schedule.cron), schedule.kind, coalesce(schedule.payload, '{}'),
            coalesce(schedule.queue, 'default'), schedule.priority, schedule.max_attempts)
    ON CONFLICT (name) DO UPDATE
    SET cron = EXCLUDED.cron, kind = EXCLUDED.kind, payload = EXCLUDED.payload, queue = EXCLUDED.queue,
        priority = EXCLUDED.priority, max_attempts = EXCLUDED.max_attempts, enabled = true,
        next_run_at = NULL, last_error = NULL, updated_at = now();
    PERFORM pg_notify('muwa_jobs', 'scheduled ' || schedule.name);
END;
$$;

COMMENT ON FUNCTION muwa.schedule IS 'Creates or replaces a periodic job: one job of kind/payload at every cron time (UTC).';

CREATE FUNCTION muwa.unschedule(name text) RETURNS boolean
LANGUAGE sql AS $$
    WITH gone AS (DELETE FROM muwa.schedules s WHERE s.name = unschedule.name RETURNING 1)
    SELECT EXISTS (SELECT 1 FROM gone);
$$;

REVOKE EXECUTE ON FUNCTION muwa.schedule(text, text, text, jsonb, text, integer, integer), muwa.unschedule(text) FROM PUBLIC;
GRANT SELECT ON muwa.schedules TO muwa_dashboard;
GRANT SELECT, INSERT, UPDATE, DELETE ON muwa.schedules TO muwa_worker;
