-- 0002 workers: one row per running daemon, for dashboards and `muwad status`.
-- Written by the daemon at start, every heartbeat interval, and at stop; rows of daemons that vanished
-- without saying goodbye are marked 'lost' by the other daemons' rescuers.

CREATE TABLE muwa.workers (
    id           text PRIMARY KEY,                 -- host:pid:start, unique per process start
    host         text        NOT NULL,
    pid          integer     NOT NULL,
    version      text        NOT NULL,
    queues       text[]      NOT NULL,
    kinds        text[]      NOT NULL,
    concurrency  integer     NOT NULL,
    started_at   timestamptz NOT NULL DEFAULT now(),
    last_seen_at timestamptz NOT NULL DEFAULT now(),
    state        text        NOT NULL DEFAULT 'starting'
                             CONSTRAINT workers_state CHECK (state IN ('starting', 'running', 'draining', 'stopped', 'lost')),
    current_jobs bigint[]    NOT NULL DEFAULT '{}',
    status_line  text        NOT NULL DEFAULT ''   -- what systemd's STATUS= says
);

CREATE INDEX workers_live ON muwa.workers (last_seen_at) WHERE state IN ('starting', 'running', 'draining');
