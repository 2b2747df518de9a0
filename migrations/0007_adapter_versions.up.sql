-- 0007 adapter versions: a fine-tune whose `output` names an existing adapter adds a version instead of
-- replacing it. `name` resolves to the newest version, `name@N` to version N for good.
--
--   muwa.adapter_versions  every version ever registered: (name, version), the producing job, the role that
--                          enqueued it, the version it replaced, and when / by which job and role it was
--                          itself replaced as the newest
--   muwa.adapters          one row per name: the newest version (as before, plus version, enqueued_by and
--                          what it replaced), so existing queries keep working
--
-- Fine-tune jobs write each version to its own directory (<state>/adapters/NAME@N) and never overwrite one.
-- A payload with "if_exists": "fail" refuses to add a version to an existing name before training starts.

CREATE TABLE muwa.adapter_versions (
    name               text        NOT NULL CONSTRAINT adapter_versions_name CHECK (name ~ '^[A-Za-z0-9][A-Za-z0-9_.-]{0,127}$'),
    version            integer     NOT NULL CONSTRAINT adapter_versions_version CHECK (version >= 1),
    base_model         text        NOT NULL,
    path               text        NOT NULL,
    lora_config        jsonb       NOT NULL,
    training_args      jsonb       NOT NULL,
    final_loss         double precision,
    eval_loss          double precision,
    steps              integer,
    job_id             bigint      REFERENCES muwa.jobs (id) ON DELETE SET NULL,
    enqueued_by        text,                      -- muwa.jobs.created_by of the producing job
    previous_version   integer,                   -- the newest version when this one was registered
    created_at         timestamptz NOT NULL DEFAULT now(),
    replaced_at        timestamptz,               -- when a newer version became the newest
    replaced_by_job_id bigint,
    replaced_by_role   text,
    PRIMARY KEY (name, version)
);

ALTER TABLE muwa.adapters
    ADD COLUMN version          integer NOT NULL DEFAULT 1,
    ADD COLUMN enqueued_by      text,
    ADD COLUMN previous_version integer,
    ADD COLUMN previous_job_id  bigint;

-- Adapters registered before versions existed become version 1.
UPDATE muwa.adapters a SET enqueued_by = j.created_by FROM muwa.jobs j WHERE j.id = a.job_id;
INSERT INTO muwa.adapter_versions (name, version, base_model, path, lora_config, training_args, final_loss, eval_loss,
                                   steps, job_id, enqueued_by, created_at)
SELECT name, version, base_model, path, lora_config, training_args, final_loss, eval_loss, steps, job_id,
       enqueued_by, created_at
FROM muwa.adapters;

COMMENT ON TABLE muwa.adapter_versions IS 'Every version of every adapter; muwa.adapters holds the newest of each name.';

CREATE OR REPLACE FUNCTION muwa.register_adapter() RETURNS trigger
LANGUAGE plpgsql AS $$
DECLARE
    adapter_name text := NEW.output ->> 'name';
    -- The version the job wrote its files as (NAME@N); taken unless another job registered it meanwhile.
    wanted       integer := (NEW.output ->> 'version')::numeric::integer;
    newest       integer;
    newest_job   bigint;
    chosen       integer;
    creator      text;
BEGIN
    -- Registrations of one name happen one at a time.
    PERFORM pg_advisory_xact_lock(hashtext('muwa.adapters:' || adapter_name));
    SELECT v.version, v.job_id INTO newest, newest_job
    FROM muwa.adapter_versions v WHERE v.name = adapter_name ORDER BY v.version DESC LIMIT 1;
    chosen := CASE WHEN wanted > coalesce(newest, 0) THEN wanted ELSE coalesce(newest, 0) + 1 END;
    SELECT j.created_by INTO creator FROM muwa.jobs j WHERE j.id = NEW.job_id;

    INSERT INTO muwa.adapter_versions (name, version, base_model, path, lora_config, training_args, final_loss,
                                       eval_loss, steps, job_id, enqueued_by, previous_version, created_at)
    VALUES (adapter_name, chosen, NEW.output ->> 'base_model', NEW.output ->> 'path',
            coalesce(NEW.output -> 'lora_config', '{}'), coalesce(NEW.output -> 'training_args', '{}'),
            (NEW.output ->> 'final_loss')::double precision, (NEW.output ->> 'eval_loss')::double precision,
            (NEW.output ->> 'steps')::numeric::integer, NEW.job_id, creator, newest, now());
    IF newest IS NOT NULL THEN
        UPDATE muwa.adapter_versions
        SET replaced_at = now(), replaced_by_job_id = NEW.job_id, replaced_by_role = creator
        WHERE name = adapter_name AND version = newest;
    END IF;

    INSERT INTO muwa.adapters AS a (name, base_model, path, lora_config, training_args, final_loss, eval_loss, steps,
                                    job_id, created_at, version, enqueued_by, previous_version, previous_job_id)
    SELECT v.name, v.base_model, v.path, v.lora_config, v.training_args, v.final_loss, v.eval_loss, v.steps,
           v.job_id, v.created_at, v.version, v.enqueued_by, newest, newest_job
    FROM muwa.adapter_versions v WHERE v.name = adapter_name AND v.version = chosen
    ON CONFLICT (name) DO UPDATE
    SET base_model = EXCLUDED.base_model, path = EXCLUDED.path, lora_config = EXCLUDED.lora_config,
        training_args = EXCLUDED.training_args, final_loss = EXCLUDED.final_loss, eval_loss = EXCLUDED.eval_loss,
        steps = EXCLUDED.steps, job_id = EXCLUDED.job_id, created_at = EXCLUDED.created_at,
        version = EXCLUDED.version, enqueued_by = EXCLUDED.enqueued_by,
        previous_version = EXCLUDED.previous_version, previous_job_id = EXCLUDED.previous_job_id;
    RETURN NULL;
END;
$$;

GRANT SELECT ON muwa.adapter_versions TO muwa_enqueuer, muwa_dashboard;
GRANT SELECT, INSERT, UPDATE, DELETE ON muwa.adapter_versions TO muwa_worker;
