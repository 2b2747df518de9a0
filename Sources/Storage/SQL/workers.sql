-- Named statements for muwa.workers: one row per running daemon.

-- name: WorkerRegister
INSERT INTO muwa.workers (id, host, pid, version, queues, kinds, concurrency, state)
VALUES ($1, $2, $3, $4, $5::text[], $6::text[], $7, 'starting')
ON CONFLICT (id) DO UPDATE SET last_seen_at = now(), state = 'starting';

-- name: WorkerUpdate
-- $2 state, $3 current job ids (bigint[] literal), $4 status line. Re-creates a row deleted meanwhile.
UPDATE muwa.workers
SET last_seen_at = now(), state = $2, current_jobs = $3::bigint[], status_line = $4
WHERE id = $1;

-- name: WorkerMarkLost
-- Workers not seen for $1 seconds are gone (kill -9, power loss); their jobs come back via lease expiry.
UPDATE muwa.workers
SET state = 'lost'
WHERE state IN ('starting', 'running', 'draining') AND last_seen_at < now() - make_interval(secs => $1::float8)
RETURNING id;

-- name: WorkerPrune
-- Forgets stopped/lost workers after $1 days.
DELETE FROM muwa.workers
WHERE state IN ('stopped', 'lost') AND last_seen_at < now() - make_interval(days => $1::integer);
