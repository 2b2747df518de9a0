-- Named statements for `muwad bench-queue`: fill a private queue, measure it, clean it up. Every statement
-- works on the bench's own queue ($1) only.

-- name: BenchFillFinished
-- $2 finished ping jobs in queue $1 (the claim index must skip them).
INSERT INTO muwa.jobs (kind, queue, status, attempt, started_at, finished_at)
SELECT 'ping', $1, 'succeeded', 1, now(), now() FROM generate_series(1, $2::int);

-- name: BenchAnalyzeJobs
ANALYZE muwa.jobs;

-- name: BenchEnqueueBatch
-- $2 ping jobs with an empty payload in queue $1.
INSERT INTO muwa.jobs (kind, queue, payload) SELECT 'ping', $1, '{}' FROM generate_series(1, $2::int);

-- name: BenchBatchFigures
-- Throughput and claim-to-finish times of the batch jobs of queue $1.
SELECT count(*) AS jobs,
       extract(epoch FROM max(r.finished_at) - min(j.created_at))::float8 AS span,
       avg(extract(epoch FROM r.finished_at - r.started_at))::float8 AS mean,
       percentile_cont(0.5) WITHIN GROUP (ORDER BY extract(epoch FROM r.finished_at - r.started_at)) AS p50,
       percentile_cont(0.95) WITHIN GROUP (ORDER BY extract(epoch FROM r.finished_at - r.started_at)) AS p95,
       percentile_cont(0.99) WITHIN GROUP (ORDER BY extract(epoch FROM r.finished_at - r.started_at)) AS p99,
       count(*) FILTER (WHERE r.outcome <> 'succeeded') AS bad
FROM muwa.job_runs r JOIN muwa.jobs j ON j.id = r.job_id
WHERE j.queue = $1 AND j.payload = '{}';

-- name: BenchEnqueueSingle
-- One ping job (number $2) in queue $1.
INSERT INTO muwa.jobs (kind, queue, payload) VALUES ('ping', $1, jsonb_build_object('single', $2::int)) RETURNING id;

-- name: BenchSingleFigures
-- Median pickup and completion latency of the single jobs of queue $1.
SELECT percentile_cont(0.5) WITHIN GROUP (ORDER BY extract(epoch FROM r.started_at - j.created_at)) AS pickup,
       percentile_cont(0.5) WITHIN GROUP (ORDER BY extract(epoch FROM r.finished_at - j.created_at)) AS total
FROM muwa.job_runs r JOIN muwa.jobs j ON j.id = r.job_id
WHERE j.queue = $1 AND j.payload ? 'single';

-- name: BenchWorkersReady
SELECT count(*) AS n FROM muwa.workers WHERE state = 'running' AND $1 = ANY (queues);

-- name: BenchSucceeded
SELECT count(*) AS n FROM muwa.jobs WHERE queue = $1 AND status = 'succeeded';

-- name: BenchJobStatus
SELECT status FROM muwa.jobs WHERE id = $1;

-- name: BenchDeleteJobs
DELETE FROM muwa.jobs WHERE queue = $1;

-- name: BenchDeleteWorkers
DELETE FROM muwa.workers WHERE $1 = ANY (queues);
