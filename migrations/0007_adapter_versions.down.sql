-- Undo 0007: back to one row per name (the newest version), registered by 0005's trigger.
CREATE OR REPLACE FUNCTION muwa.register_adapter() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO muwa.adapters AS a (name, base_model, path, lora_config, training_args, final_loss, eval_loss, steps,
                                    job_id, created_at)
    VALUES (NEW.output ->> 'name', NEW.output ->> 'base_model', NEW.output ->> 'path',
            coalesce(NEW.output -> 'lora_config', '{}'), coalesce(NEW.output -> 'training_args', '{}'),
            (NEW.output ->> 'final_loss')::double precision, (NEW.output ->> 'eval_loss')::double precision,
            (NEW.output ->> 'steps')::integer, NEW.job_id, now())
    ON CONFLICT (name) DO UPDATE
    SET base_model = EXCLUDED.base_model, path = EXCLUDED.path, lora_config = EXCLUDED.lora_config,
        training_args = EXCLUDED.training_args, final_loss = EXCLUDED.final_loss, eval_loss = EXCLUDED.eval_loss,
        steps = EXCLUDED.steps, job_id = EXCLUDED.job_id, created_at = EXCLUDED.created_at;
    RETURN NULL;
END;
$$;
DROP TABLE IF EXISTS muwa.adapter_versions;
ALTER TABLE muwa.adapters
    DROP COLUMN IF EXISTS version,
    DROP COLUMN IF EXISTS enqueued_by,
    DROP COLUMN IF EXISTS previous_version,
    DROP COLUMN IF EXISTS previous_job_id;
