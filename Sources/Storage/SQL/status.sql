-- Named statements for `muwad status`.

-- name: StatusWorkers
SELECT id, host, pid, version, state, concurrency, array_to_string(current_jobs, ',') AS current_jobs,
       status_line, started_at::text AS started_at,
       extract(epoch FROM now() - last_seen_at)::float8 AS seen_seconds_ago
FROM muwa.workers
WHERE state IN ('starting', 'running', 'draining') OR last_seen_at > now() - interval '1 hour'
ORDER BY state, host, pid;

-- name: StatusQueueDepth
SELECT queue, kind, status, jobs, scheduled_later,
       coalesce(extract(epoch FROM oldest_wait)::float8, 0) AS oldest_wait_seconds
FROM muwa.queue_depth
ORDER BY queue, kind, status;

-- name: StatusRecentFailures
SELECT finished_at::text AS finished_at, job_id, kind, attempt, max_attempts, job_status, worker_id, outcome,
       coalesce(error, '') AS error
FROM muwa.recent_failures
LIMIT $1;

-- name: StatusRunningJobs
-- Running jobs with their progress and the pace the worker wrote into progress_detail (eta_seconds,
-- tokens_per_second), read from the jobs themselves, not from the worker's heartbeat line.
SELECT id, kind, queue, attempt, worker_id, coalesce(progress, 0)::float8 AS progress,
       (progress_detail->>'eta_seconds')::float8 AS eta_seconds,
       (progress_detail->>'tokens_per_second')::float8 AS tokens_per_second,
       extract(epoch FROM now() - started_at)::float8 AS running_seconds,
       extract(epoch FROM now() - heartbeat_at)::float8 AS heartbeat_seconds_ago,
       cancel_requested
FROM muwa.jobs
WHERE status = 'running'
ORDER BY started_at, id
LIMIT $1;
