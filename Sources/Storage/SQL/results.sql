-- Named statements for what jobs give back while they run (events) and what executors look up (adapters).
-- Event writes are guarded like every write after the claim: (id, worker_id, attempt, status = 'running').

-- name: JobEventsAppend
-- Appends the events in $4 (a jsonb array of objects) for the job's run $5, in order, if it is still ours.
-- Returns one row per event written; none means the job was taken away.
INSERT INTO muwa.job_events (job_id, attempt, run_id, event)
SELECT j.id, j.attempt, $5::bigint, e.value
FROM muwa.jobs j,
     jsonb_array_elements($4::jsonb) WITH ORDINALITY AS e (value, ordinality)
WHERE j.id = $1 AND j.worker_id = $2 AND j.attempt = $3 AND j.status = 'running'
ORDER BY e.ordinality
RETURNING id;

-- name: AdapterLookup
-- The newest version of a registered adapter, by name.
SELECT name, version, base_model, path, lora_config::text AS lora_config, job_id
FROM muwa.adapters
WHERE name = $1;

-- name: AdapterVersionLookup
-- Version $2 of a registered adapter (name@N).
SELECT name, version, base_model, path, lora_config::text AS lora_config, job_id
FROM muwa.adapter_versions
WHERE name = $1 AND version = $2::integer;
