-- Undo 0003.
DROP TRIGGER IF EXISTS jobs_notify ON muwa.jobs;
DROP FUNCTION IF EXISTS muwa.notify_jobs();
DROP FUNCTION IF EXISTS muwa.retry(bigint);
DROP FUNCTION IF EXISTS muwa.cancel(bigint);
DROP FUNCTION IF EXISTS muwa.enqueue(text, jsonb, text, integer, timestamptz, integer, text, interval);
