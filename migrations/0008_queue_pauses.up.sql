-- 0008 queue pauses: stop handing out a queue's jobs without touching them (Oban's pause_queue, River's
-- QueuePause). Workers do not claim jobs of a paused queue; running jobs finish as usual; queued ones wait.
--
--   SELECT muwa.pause_queue('default', reason => 'database maintenance');   -- true if it was running
--   SELECT muwa.resume_queue('default');                                    -- true if it was paused
--   SELECT * FROM muwa.paused_queues;

CREATE TABLE muwa.paused_queues (
    queue     text        PRIMARY KEY CONSTRAINT paused_queues_name CHECK (queue ~ '^[A-Za-z0-9_.:-]{1,64}$'),
    paused_at timestamptz NOT NULL DEFAULT now(),
    paused_by text        NOT NULL DEFAULT session_user,
    reason    text        NOT NULL DEFAULT ''
);

CREATE FUNCTION muwa.pause_queue(queue text, reason text DEFAULT '') RETURNS boolean
LANGUAGE plpgsql AS $$
#variable_conflict use_column
BEGIN
    IF pause_queue.queue IS NULL OR pause_queue.queue !~ '^[A-Za-z0-9_.:-]{1,64}$' THEN
        RAISE EXCEPTION 'muwa.pause_queue: % is not a queue name', coalesce(quote_literal(pause_queue.queue), 'NULL')
            USING ERRCODE = 'invalid_parameter_value';
    END IF;
    INSERT INTO muwa.paused_queues (queue, reason) VALUES (pause_queue.queue, coalesce(pause_queue.reason, ''))
    ON CONFLICT (queue) DO NOTHING;
    RETURN FOUND;
END;
$$;

COMMENT ON FUNCTION muwa.pause_queue IS 'Stops workers from claiming the queue''s jobs (running ones go on).';

CREATE FUNCTION muwa.resume_queue(queue text) RETURNS boolean
LANGUAGE plpgsql AS $$
#variable_conflict use_column
BEGIN
    DELETE FROM muwa.paused_queues p WHERE p.queue = resume_queue.queue;
    IF FOUND THEN
        -- Idle workers wake at once (any notification they do not know makes them look for work).
        PERFORM pg_notify('muwa_jobs', 'resumed ' || resume_queue.queue);
        RETURN true;
    END IF;
    RETURN false;
END;
$$;

COMMENT ON FUNCTION muwa.resume_queue IS 'Lets workers claim the queue''s jobs again.';

-- Pausing is an operator's act: the table owner (and whoever it grants EXECUTE to) may call these.
REVOKE EXECUTE ON FUNCTION muwa.pause_queue(text, text), muwa.resume_queue(text) FROM PUBLIC;
GRANT SELECT ON muwa.paused_queues TO muwa_dashboard, muwa_enqueuer;
GRANT SELECT, INSERT, UPDATE, DELETE ON muwa.paused_queues TO muwa_worker;
