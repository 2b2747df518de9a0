-- Undo 0004.
DROP VIEW IF EXISTS muwa.recent_failures;
DROP VIEW IF EXISTS muwa.running_jobs;
DROP VIEW IF EXISTS muwa.attempts_hourly;
DROP VIEW IF EXISTS muwa.throughput_hourly;
DROP VIEW IF EXISTS muwa.queue_depth;
