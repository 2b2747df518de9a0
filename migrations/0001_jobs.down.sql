-- Undo 0001: drops the queue and everything in it.
DROP TABLE IF EXISTS muwa.job_outputs;
DROP TABLE IF EXISTS muwa.job_runs;
DROP TABLE IF EXISTS muwa.jobs;
DROP TABLE IF EXISTS muwa.job_kinds;
