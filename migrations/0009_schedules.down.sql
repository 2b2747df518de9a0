DROP FUNCTION IF EXISTS muwa.unschedule(text);
DROP FUNCTION IF EXISTS muwa.schedule(text, text, text, jsonb, text, integer, integer);
DROP TABLE IF EXISTS muwa.schedules;
