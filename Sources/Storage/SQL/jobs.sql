-- Named statements for the job lifecycle. Each `-- name:` block is one statement, run with text
-- parameters through PQexecParams. Every write after the claim is guarded by
-- (id, worker_id, attempt, status = 'running'): zero rows means the job was taken away from us.

-- name: JobClaim
-- Claims up to $3 runnable jobs for worker $4 with a lease of $5 seconds, in (priority, run_at, id) order,
-- from queues $1 and kinds $2. One short transaction; opens a job_runs row per claimed job.
WITH next AS (
    SELECT id
    FROM muwa.jobs
    WHERE status = 'queued'
      AND run_at <= now()
      AND queue = ANY ($1::text[])
      AND kind = ANY ($2::text[])
    ORDER BY priority, run_at, id
    LIMIT $3
    FOR UPDATE SKIP LOCKED
), claimed AS (
    UPDATE muwa.jobs j
    SET status = 'running',
        attempt = j.attempt + 1,
        worker_id = $4,
        started_at = now(),
        heartbeat_at = now(),
        lease_expires_at = now() + make_interval(secs => $5::float8)
    FROM next
    WHERE j.id = next.id
    RETURNING j.*
), runs AS (
    INSERT INTO muwa.job_runs (job_id, attempt, worker_id)
    SELECT id, attempt, worker_id FROM claimed
    RETURNING id, job_id
)
SELECT c.id, c.kind, c.queue, c.payload::text AS payload, c.priority, c.attempt, c.max_attempts,
       extract(epoch FROM c.time_limit)::float8 AS time_limit_seconds, c.cancel_requested,
       c.checkpoint::text AS checkpoint, r.id AS run_id
FROM claimed c
JOIN runs r ON r.job_id = c.id
ORDER BY c.priority, c.run_at, c.id;

-- name: JobHeartbeat
-- Renews the lease ($4 seconds) and, when given, stores progress $5 (0…1) and detail $6 (jsonb).
-- Returns cancel_requested; no row means the job is no longer ours.
UPDATE muwa.jobs
SET heartbeat_at = now(),
    lease_expires_at = now() + make_interval(secs => $4::float8),
    progress = coalesce($5::real, progress),
    progress_detail = coalesce($6::jsonb, progress_detail)
WHERE id = $1 AND worker_id = $2 AND attempt = $3 AND status = 'running'
RETURNING cancel_requested;

-- name: JobFinish
-- Final success ($4 = 'succeeded') or cancellation ($4 = 'cancelled') with result $5 and outputs $6 (a jsonb
-- array, one job_outputs row per element), closing the run. Returns the job id; no row: not ours any more.
WITH done AS (
    UPDATE muwa.jobs
    SET status = $4,
        result = $5::jsonb,
        finished_at = now(),
        lease_expires_at = NULL,
        progress = CASE WHEN $4 = 'succeeded' THEN 1 ELSE progress END
    WHERE id = $1 AND worker_id = $2 AND attempt = $3 AND status = 'running'
    RETURNING id, attempt
), run AS (
    UPDATE muwa.job_runs r
    SET finished_at = clock_timestamp(), outcome = $4
    FROM done
    WHERE r.job_id = done.id AND r.worker_id = $2 AND r.finished_at IS NULL
), old_outputs AS (
    DELETE FROM muwa.job_outputs o USING done WHERE o.job_id = done.id AND o.attempt <> done.attempt
), new_outputs AS (
    INSERT INTO muwa.job_outputs (job_id, attempt, idx, output)
    SELECT done.id, done.attempt, (e.ordinality - 1)::integer, e.value
    FROM done, jsonb_array_elements(coalesce($6::jsonb, '[]')) WITH ORDINALITY AS e (value, ordinality)
)
SELECT id FROM done;

-- name: JobFail
-- A failed attempt with message $4. Retryable ($5) with attempts left: back to 'queued' after $6 seconds;
-- otherwise 'failed' (or 'cancelled' when a cancel was requested meanwhile). Appends to the error history.
WITH failed AS (
    UPDATE muwa.jobs j
    SET status = CASE WHEN j.cancel_requested THEN 'cancelled'
                      WHEN $5::boolean AND j.attempt < j.max_attempts THEN 'queued'
                      ELSE 'failed' END,
        run_at = CASE WHEN $5::boolean AND j.attempt < j.max_attempts AND NOT j.cancel_requested
                      THEN now() + make_interval(secs => $6::float8) ELSE j.run_at END,
        finished_at = CASE WHEN $5::boolean AND j.attempt < j.max_attempts AND NOT j.cancel_requested
                           THEN NULL ELSE now() END,
        lease_expires_at = NULL,
        errors = j.errors || jsonb_build_array(jsonb_build_object(
            'attempt', j.attempt, 'at', now(), 'worker', $2::text, 'message', $4::text))
    WHERE j.id = $1 AND j.worker_id = $2 AND j.attempt = $3 AND j.status = 'running'
    RETURNING j.id, j.status, extract(epoch FROM j.run_at - now())::float8 AS retry_in_seconds
), run AS (
    UPDATE muwa.job_runs r
    SET finished_at = clock_timestamp(), outcome = 'failed', error = $4
    FROM failed
    WHERE r.job_id = failed.id AND r.worker_id = $2 AND r.finished_at IS NULL
)
SELECT id, status, retry_in_seconds FROM failed;

-- name: JobRelease
-- Gives a running job back without using up its attempt (graceful shutdown), with an optional executor
-- checkpoint $4 to resume from and a reason $5. A job whose cancel was requested is cancelled instead.
WITH released AS (
    UPDATE muwa.jobs j
    SET status = CASE WHEN j.cancel_requested THEN 'cancelled' ELSE 'queued' END,
        finished_at = CASE WHEN j.cancel_requested THEN now() END,
        attempt = CASE WHEN j.cancel_requested THEN j.attempt ELSE j.attempt - 1 END,
        run_at = now(),
        lease_expires_at = NULL,
        checkpoint = coalesce($4::jsonb, j.checkpoint)
    WHERE j.id = $1 AND j.worker_id = $2 AND j.attempt = $3 AND j.status = 'running'
    RETURNING j.id, j.status
), run AS (
    UPDATE muwa.job_runs r
    SET finished_at = clock_timestamp(), outcome = 'released', error = $5
    FROM released
    WHERE r.job_id = released.id AND r.worker_id = $2 AND r.finished_at IS NULL
)
SELECT id, status FROM released;

-- name: JobState
-- Who holds a job now (to explain a guarded write that touched no row).
SELECT status, worker_id, attempt, cancel_requested FROM muwa.jobs WHERE id = $1;

-- name: JobRescueExpired
-- Rescues up to $1 jobs whose lease expired (their worker died or lost the database): back to 'queued'
-- after $3 seconds, 'failed' when attempts are used up, 'cancelled' when a cancel was pending. Skips
-- everything while the server itself has been up for less than $2 seconds, so that live workers get one
-- lease period after a PostgreSQL restart to renew their leases before anyone takes their jobs.
-- A job whose runs were lost $4 times (this one included; 0: no limit) fails permanently whatever its
-- max_attempts: a job that kills the daemon running it must not take down worker after worker.
WITH expired AS (
    SELECT id, worker_id, attempt, heartbeat_at, lease_expires_at
    FROM muwa.jobs
    WHERE status = 'running'
      AND lease_expires_at < now()
      AND now() - pg_postmaster_start_time() > make_interval(secs => $2::float8)
    ORDER BY lease_expires_at
    LIMIT $1
    FOR UPDATE SKIP LOCKED
), counted AS (
    SELECT e.*,
           (SELECT count(*) FROM muwa.job_runs r WHERE r.job_id = e.id AND r.outcome = 'lost') + 1 AS lost_runs,
           $4::integer > 0
               AND (SELECT count(*) FROM muwa.job_runs r WHERE r.job_id = e.id AND r.outcome = 'lost') + 1
                   >= $4::integer AS too_many_lost
    FROM expired e
), rescued AS (
    UPDATE muwa.jobs j
    SET status = CASE WHEN j.cancel_requested THEN 'cancelled'
                      WHEN e.too_many_lost OR j.attempt >= j.max_attempts THEN 'failed'
                      ELSE 'queued' END,
        finished_at = CASE WHEN j.cancel_requested OR e.too_many_lost OR j.attempt >= j.max_attempts THEN now() END,
        run_at = now() + make_interval(secs => $3::float8),
        lease_expires_at = NULL,
        errors = j.errors || jsonb_build_array(jsonb_build_object(
            'attempt', j.attempt, 'at', now(), 'worker', e.worker_id,
            'message', format('lease expired at %s: worker %s stopped renewing it (last heartbeat %s); rescued',
                              e.lease_expires_at, e.worker_id, e.heartbeat_at)
                       || CASE WHEN e.too_many_lost AND NOT j.cancel_requested
                               THEN format('; the worker running this job stopped %s (the daemon crashed or was killed '
                                           || 'while running it): the job failed permanently to protect the queue',
                                           CASE WHEN e.lost_runs = 2 THEN 'twice' ELSE e.lost_runs || ' times' END)
                               ELSE '' END))
    FROM counted e
    WHERE j.id = e.id
    RETURNING j.id, j.kind, j.status, j.attempt, e.worker_id AS lost_worker
), runs AS (
    UPDATE muwa.job_runs r
    SET finished_at = clock_timestamp(), outcome = 'lost', error = 'lease expired; rescued'
    FROM rescued
    WHERE r.job_id = rescued.id AND r.finished_at IS NULL
)
SELECT id, kind, status, attempt, lost_worker FROM rescued;

-- name: JobCancelRequested
-- Does the job's row ask for a cancel? Guarded like every write: no row means the job is not ours any more.
-- A 'cancel <id>' notification only makes the worker run this; anyone may send a notification.
SELECT cancel_requested FROM muwa.jobs WHERE id = $1 AND worker_id = $2 AND attempt = $3 AND status = 'running';
