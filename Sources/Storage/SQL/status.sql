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
