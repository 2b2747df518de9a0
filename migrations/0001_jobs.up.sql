-- 0001 jobs: the queue itself. Lifecycle of a job:
--
--   queued ──claim──▶ running ──▶ succeeded | failed | cancelled
--     ▲                  │
--     └── retry (backoff), release (shutdown), rescue (lease expired) ──┘
--
-- Everything after the claim is guarded by (id, worker_id, attempt, status = 'running').
-- The table stays lean (no outputs: see muwa.job_outputs) so that heartbeats are cheap HOT updates:
-- no index covers a column a heartbeat writes (heartbeat_at, lease_expires_at, progress).

CREATE SCHEMA IF NOT EXISTS muwa;

-- The job kinds this deployment knows. A foreign key keeps typos out of the queue.
CREATE TABLE muwa.job_kinds (
    kind        text PRIMARY KEY CONSTRAINT job_kinds_name CHECK (kind ~ '^[a-z][a-z0-9_]{0,62}$'),
    description text NOT NULL DEFAULT ''
);

INSERT INTO muwa.job_kinds (kind, description) VALUES
    ('generate', 'text generation with an OPT checkpoint'),
    ('finetune', 'LoRA fine-tune of an OPT checkpoint'),
    ('evaluate', 'perplexity and mean loss of an OPT checkpoint on a text set'),
    ('ping',     'monitoring: returns its payload as its result (sleep_ms, fail)');

CREATE TABLE muwa.jobs (
    id               bigserial PRIMARY KEY,
    kind             text        NOT NULL REFERENCES muwa.job_kinds (kind),
    queue            text        NOT NULL DEFAULT 'default'
                                 CONSTRAINT jobs_queue_name CHECK (queue ~ '^[A-Za-z0-9_.:-]{1,64}$'),
    payload          jsonb       NOT NULL DEFAULT '{}'
                                 CONSTRAINT jobs_payload_is_object CHECK (jsonb_typeof(payload) = 'object'),
    status           text        NOT NULL DEFAULT 'queued'
                                 CONSTRAINT jobs_status CHECK (status IN ('queued', 'running', 'succeeded', 'failed', 'cancelled')),
    priority         smallint    NOT NULL DEFAULT 0,          -- smaller runs first (like nice)
    run_at           timestamptz NOT NULL DEFAULT now(),      -- not before this time
    attempt          integer     NOT NULL DEFAULT 0 CONSTRAINT jobs_attempt CHECK (attempt >= 0),
    max_attempts     integer     NOT NULL DEFAULT 3 CONSTRAINT jobs_max_attempts CHECK (max_attempts BETWEEN 1 AND 1000),
    time_limit       interval    CONSTRAINT jobs_time_limit CHECK (time_limit > interval '0'),  -- NULL: no limit
    unique_key       text,                                    -- at most one queued/running job per key
    worker_id        text,                                    -- who runs (ran) it
    lease_expires_at timestamptz,                             -- set while running; renewed by heartbeats
    heartbeat_at     timestamptz,
    progress         real        CONSTRAINT jobs_progress CHECK (progress BETWEEN 0 AND 1),
    progress_detail  jsonb,                                   -- short: {"step": 120, "loss": 2.31}
    result           jsonb,                                   -- small summary; bulky outputs in job_outputs
    checkpoint       jsonb,                                   -- where a released job resumes (executor-defined)
    errors           jsonb       NOT NULL DEFAULT '[]',       -- [{attempt, at, worker, message}], one per failed attempt
    cancel_requested boolean     NOT NULL DEFAULT false,
    created_at       timestamptz NOT NULL DEFAULT now(),
    started_at       timestamptz,                             -- latest claim
    finished_at      timestamptz,
    CONSTRAINT jobs_running_has_lease CHECK (status <> 'running' OR (worker_id IS NOT NULL AND lease_expires_at IS NOT NULL)),
    CONSTRAINT jobs_finished_at CHECK ((status IN ('succeeded', 'failed', 'cancelled')) = (finished_at IS NOT NULL))
) WITH (fillfactor = 85);  -- room for HOT heartbeat updates

-- Claiming: only queued rows are indexed, in claim order, so a million finished rows cost nothing.
CREATE INDEX jobs_claim_order ON muwa.jobs (priority, run_at, id) WHERE status = 'queued';
-- Rescuing: the (few) running rows.
CREATE INDEX jobs_running ON muwa.jobs (id) WHERE status = 'running';
-- Dashboards: recent throughput and failures.
CREATE INDEX jobs_finished_at ON muwa.jobs (finished_at) WHERE finished_at IS NOT NULL;
-- Uniqueness among live jobs only: a finished job frees its key.
CREATE UNIQUE INDEX jobs_unique_key_active ON muwa.jobs (unique_key)
    WHERE unique_key IS NOT NULL AND status IN ('queued', 'running');

-- One row per execution attempt: the audit trail, and the proof that no job ran twice at once.
CREATE TABLE muwa.job_runs (
    id          bigserial PRIMARY KEY,
    job_id      bigint      NOT NULL REFERENCES muwa.jobs (id) ON DELETE CASCADE,
    attempt     integer     NOT NULL,
    worker_id   text        NOT NULL,
    started_at  timestamptz NOT NULL DEFAULT clock_timestamp(),
    finished_at timestamptz,
    outcome     text        CONSTRAINT job_runs_outcome
                            CHECK (outcome IN ('succeeded', 'failed', 'cancelled', 'released', 'lost')),
    error       text,
    CONSTRAINT job_runs_finished CHECK ((outcome IS NULL) = (finished_at IS NULL))
);

CREATE INDEX job_runs_job ON muwa.job_runs (job_id);
CREATE INDEX job_runs_open ON muwa.job_runs (job_id) WHERE finished_at IS NULL;
CREATE INDEX job_runs_finished_at ON muwa.job_runs (finished_at) WHERE finished_at IS NOT NULL;

-- Bulky outputs (generated texts, eval reports), written with the final status in one statement.
-- Only the latest attempt's outputs are kept.
CREATE TABLE muwa.job_outputs (
    job_id     bigint      NOT NULL REFERENCES muwa.jobs (id) ON DELETE CASCADE,
    attempt    integer     NOT NULL,
    idx        integer     NOT NULL,
    output     jsonb       NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (job_id, attempt, idx)
);
