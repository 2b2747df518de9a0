-- 0004 dashboard views: what Grafana panels and `muwad status` read.

-- Queue depth per queue, kind and status: everything live, plus what finished in the last 24 hours.
CREATE VIEW muwa.queue_depth AS
SELECT queue,
       kind,
       status,
       count(*)                                                              AS jobs,
       count(*) FILTER (WHERE status = 'queued' AND run_at > now())          AS scheduled_later,
       max(now() - run_at) FILTER (WHERE status = 'queued' AND run_at <= now()) AS oldest_wait
FROM muwa.jobs
WHERE status IN ('queued', 'running') OR finished_at > now() - interval '24 hours'
GROUP BY queue, kind, status;

-- Throughput and failure rate per hour and kind over the last 7 days (final outcomes of jobs) …
CREATE VIEW muwa.throughput_hourly AS
SELECT date_trunc('hour', finished_at)                       AS hour,
       kind,
       count(*) FILTER (WHERE status = 'succeeded')          AS succeeded,
       count(*) FILTER (WHERE status = 'failed')             AS failed,
       count(*) FILTER (WHERE status = 'cancelled')          AS cancelled,
       round(count(*) FILTER (WHERE status = 'failed')::numeric
             / nullif(count(*) FILTER (WHERE status IN ('succeeded', 'failed')), 0), 4) AS failure_rate,
       avg(finished_at - started_at)                         AS mean_last_run_time
FROM muwa.jobs
WHERE finished_at > now() - interval '7 days'
GROUP BY 1, 2;

-- … and per attempt (a retried job counts each failed try), from the audit trail.
CREATE VIEW muwa.attempts_hourly AS
SELECT date_trunc('hour', r.finished_at)                     AS hour,
       j.kind,
       count(*)                                              AS attempts,
       count(*) FILTER (WHERE r.outcome = 'succeeded')       AS succeeded,
       count(*) FILTER (WHERE r.outcome = 'failed')          AS failed,
       count(*) FILTER (WHERE r.outcome = 'lost')            AS lost,
       count(*) FILTER (WHERE r.outcome = 'released')        AS released,
       round(count(*) FILTER (WHERE r.outcome IN ('failed', 'lost'))::numeric / nullif(count(*), 0), 4) AS failure_rate
FROM muwa.job_runs r
JOIN muwa.jobs j ON j.id = r.job_id
WHERE r.finished_at > now() - interval '7 days'
GROUP BY 1, 2;

-- Running jobs with progress and the worker that runs them.
CREATE VIEW muwa.running_jobs AS
SELECT j.id,
       j.kind,
       j.queue,
       j.attempt,
       j.max_attempts,
       j.worker_id,
       w.host,
       w.pid,
       j.started_at,
       now() - j.started_at AS runtime,
       j.progress,
       j.progress_detail,
       j.heartbeat_at,
       j.lease_expires_at,
       j.cancel_requested
FROM muwa.jobs j
LEFT JOIN muwa.workers w ON w.id = j.worker_id
WHERE j.status = 'running';

-- Failed and lost attempts, newest first.
CREATE VIEW muwa.recent_failures AS
SELECT r.finished_at, r.job_id, j.kind, r.attempt, j.max_attempts, j.status AS job_status, r.worker_id, r.outcome, r.error
FROM muwa.job_runs r
JOIN muwa.jobs j ON j.id = r.job_id
WHERE r.outcome IN ('failed', 'lost') AND r.finished_at > now() - interval '7 days'
ORDER BY r.finished_at DESC;
