DROP FUNCTION IF EXISTS muwa.resume_queue(text);
DROP FUNCTION IF EXISTS muwa.pause_queue(text, text);
DROP TABLE IF EXISTS muwa.paused_queues;
