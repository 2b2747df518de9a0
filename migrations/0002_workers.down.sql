-- Undo 0002.
DROP TABLE IF EXISTS muwa.workers;
