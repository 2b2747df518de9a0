-- 0005 job results: what generate, finetune and evaluate jobs give back, in the shapes dashboards read.
--
-- Executors never write SQL. A job's outputs arrive with its final status in one statement (JobFinish →
-- muwa.job_outputs, only the latest attempt kept), each output a JSON object with a "type":
--   generation   → muwa.generations        (one per prompt)
--   eval_result  → muwa.eval_results       (one per task × metric × model/adapter)
--   eval_sample  → muwa.eval_samples       (one per evaluated example)
--   adapter      → muwa.adapters           (the registry: a real table, filled by a trigger)
-- Events written while a job runs (training curves) go to muwa.job_events, flushed with the heartbeat
-- and guarded by the lease like every other write; muwa.train_log reads them.

-- Events of running jobs, in order. A resumed fine-tune records again the rows its checkpoint carries (a
-- crash may have lost the last ones) and goes on from there, so the newest run's rows tell the whole story;
-- a run that started over without a checkpoint replaces the earlier runs' rows the same way.
CREATE TABLE muwa.job_events (
    id         bigserial   PRIMARY KEY,                   -- write order (a released job reuses its attempt)
    job_id     bigint      NOT NULL REFERENCES muwa.jobs (id) ON DELETE CASCADE,
    attempt    integer     NOT NULL,
    run_id     bigint      NOT NULL,                      -- muwa.job_runs.id of the run that wrote it
    event      jsonb       NOT NULL CONSTRAINT job_events_is_object CHECK (jsonb_typeof(event) = 'object'),
    created_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX job_events_job ON muwa.job_events (job_id, id);

-- Adapters trained by finetune jobs, by name. A later job with the same output name replaces the entry
-- (the earlier job's row in muwa.jobs still says what it produced).
CREATE TABLE muwa.adapters (
    name          text        PRIMARY KEY CONSTRAINT adapters_name CHECK (name ~ '^[A-Za-z0-9][A-Za-z0-9_.-]{0,127}$'),
    base_model    text        NOT NULL,                   -- as the payload named it
    path          text        NOT NULL,                   -- the peft-format directory
    lora_config   jsonb       NOT NULL,
    training_args jsonb       NOT NULL,
    final_loss    double precision,
    eval_loss     double precision,
    steps         integer,
    job_id        bigint      REFERENCES muwa.jobs (id) ON DELETE SET NULL,
    created_at    timestamptz NOT NULL DEFAULT now()
);

CREATE FUNCTION muwa.register_adapter() RETURNS trigger
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

CREATE TRIGGER job_outputs_register_adapter
AFTER INSERT ON muwa.job_outputs
FOR EACH ROW WHEN (NEW.output ->> 'type' = 'adapter')
EXECUTE FUNCTION muwa.register_adapter();

-- Dashboards list jobs of one kind (fine-tunes, evaluations) newest first.
CREATE INDEX jobs_kind_id ON muwa.jobs (kind, id);

-- Typed outputs are found by type within a job.
CREATE INDEX job_outputs_type ON muwa.job_outputs ((output ->> 'type'), job_id);

-- One row per generated text.
CREATE VIEW muwa.generations AS
SELECT o.job_id,
       (o.output ->> 'index')::numeric::integer      AS idx,
       j.payload ->> 'model'                          AS model,
       o.output ->> 'adapter'                         AS adapter,
       o.output ->> 'prompt'                          AS prompt,
       o.output ->> 'input'                           AS input,
       o.output ->> 'formatted_prompt'                AS formatted_prompt,
       o.output ->> 'text'                            AS text,
       (o.output ->> 'prompt_tokens')::numeric::integer AS prompt_tokens,
       (o.output ->> 'completion_tokens')::numeric::integer AS completion_tokens,
       o.output ->> 'finish_reason'                   AS finish_reason,
       (o.output ->> 'milliseconds')::double precision AS milliseconds,
       j.status                                       AS job_status,
       o.created_at
FROM muwa.job_outputs o
JOIN muwa.jobs j ON j.id = o.job_id
WHERE o.output ->> 'type' = 'generation';

-- Training curves: one row per logged step, from the newest run of each job that logged anything.
CREATE VIEW muwa.train_log AS
WITH newest AS (
    SELECT job_id, max(run_id) AS run_id
    FROM muwa.job_events
    WHERE event ->> 'type' = 'train_step'
    GROUP BY job_id
)
SELECT DISTINCT ON (e.job_id, (e.event ->> 'step')::numeric::integer)
       e.job_id,
       (e.event ->> 'step')::numeric::integer         AS step,
       (e.event ->> 'epoch')::double precision        AS epoch,
       (e.event ->> 'loss')::double precision         AS loss,
       (e.event ->> 'eval_loss')::double precision    AS eval_loss,
       (e.event ->> 'learning_rate')::double precision AS learning_rate,
       (e.event ->> 'grad_norm')::double precision    AS grad_norm,
       (e.event ->> 'tokens_per_second')::double precision AS tokens_per_second,
       (e.event ->> 'elapsed_seconds')::double precision AS elapsed_seconds,
       e.attempt,
       e.run_id,
       e.created_at
FROM muwa.job_events e
JOIN newest n ON n.job_id = e.job_id AND n.run_id = e.run_id
WHERE e.event ->> 'type' = 'train_step'
ORDER BY e.job_id, (e.event ->> 'step')::numeric::integer, e.id DESC;

-- Metrics of evaluate jobs: one row per (job, model, adapter, task, method, metric).
CREATE VIEW muwa.eval_results AS
SELECT o.job_id,
       o.output ->> 'model'                           AS model,
       o.output ->> 'adapter'                         AS adapter,
       o.output ->> 'task'                            AS task,
       o.output ->> 'method'                          AS method,
       o.output ->> 'metric'                          AS metric,
       (o.output ->> 'value')::double precision       AS value,
       (o.output ->> 'n')::numeric::integer           AS n,
       j.status                                       AS job_status,
       o.created_at
FROM muwa.job_outputs o
JOIN muwa.jobs j ON j.id = o.job_id
WHERE o.output ->> 'type' = 'eval_result';

-- Per-example drill-down of evaluate jobs.
CREATE VIEW muwa.eval_samples AS
SELECT o.job_id,
       o.output ->> 'model'                           AS model,
       o.output ->> 'adapter'                         AS adapter,
       o.output ->> 'task'                            AS task,
       o.output ->> 'method'                          AS method,
       (o.output ->> 'index')::numeric::integer       AS idx,
       o.output ->> 'example_id'                      AS example_id,
       o.output ->> 'input'                           AS input,
       o.output ->> 'expected'                        AS expected,
       o.output ->> 'output'                          AS output,
       (o.output ->> 'score')::double precision       AS score,
       o.output -> 'details'                          AS details,
       j.status                                       AS job_status,
       o.created_at
FROM muwa.job_outputs o
JOIN muwa.jobs j ON j.id = o.job_id
WHERE o.output ->> 'type' = 'eval_sample';

-- The seed's table: task × metric with the base model beside each adapter, from succeeded evaluate jobs.
-- For the newest result of each adapter, the base result of the same job when it ran with compare_base (the
-- same examples), else the newest base result of the same model, task, method and metric (`paired` says
-- which; compare base_n with n).
CREATE VIEW muwa.model_comparison AS
WITH ok AS (
    SELECT * FROM muwa.eval_results WHERE job_status = 'succeeded'
), latest AS (
    SELECT DISTINCT ON (r.model, r.adapter, r.task, r.method, r.metric)
           r.*
    FROM ok r
    WHERE r.adapter IS NOT NULL
    ORDER BY r.model, r.adapter, r.task, r.method, r.metric, r.created_at DESC, r.job_id DESC
)
SELECT a.task,
       a.method,
       a.metric,
       a.model,
       a.adapter,
       b.value                AS base,
       a.value                AS with_adapter,
       a.value - b.value      AS difference,
       a.n,
       b.n                    AS base_n,
       b.job_id = a.job_id    AS paired,
       b.job_id               AS base_job_id,
       a.job_id               AS adapter_job_id
FROM latest a
LEFT JOIN LATERAL (
    SELECT r.value, r.n, r.job_id
    FROM ok r
    WHERE r.adapter IS NULL AND r.model = a.model AND r.task = a.task AND r.method = a.method
      AND r.metric = a.metric
    ORDER BY (r.job_id = a.job_id) DESC, r.created_at DESC, r.job_id DESC
    LIMIT 1
) b ON true;

UPDATE muwa.job_kinds SET description = 'SQuAD, PIQA or wikitext evaluation of an OPT checkpoint (and adapter)'
WHERE kind = 'evaluate';
