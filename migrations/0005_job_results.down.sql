-- Undo 0005.
UPDATE muwa.job_kinds SET description = 'perplexity and mean loss of an OPT checkpoint on a text set'
WHERE kind = 'evaluate';
DROP VIEW IF EXISTS muwa.model_comparison;
DROP VIEW IF EXISTS muwa.eval_samples;
DROP VIEW IF EXISTS muwa.eval_results;
DROP VIEW IF EXISTS muwa.train_log;
DROP VIEW IF EXISTS muwa.generations;
DROP INDEX IF EXISTS muwa.job_outputs_type;
DROP INDEX IF EXISTS muwa.jobs_kind_id;
DROP TRIGGER IF EXISTS job_outputs_register_adapter ON muwa.job_outputs;
DROP FUNCTION IF EXISTS muwa.register_adapter();
DROP TABLE IF EXISTS muwa.adapters;
DROP TABLE IF EXISTS muwa.job_events;
