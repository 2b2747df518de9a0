#!/usr/bin/env bash
# check-queries.sh: runs every SQL query of dashboards/muwa.json (each panel's rawSql and each query variable)
# with psql against a real PostgreSQL, so that a change to the dashboard or to the migrations' views cannot
# silently break a panel. The connection is libpq's: PGHOST, PGPORT, PGUSER, PGDATABASE, PGPASSWORD, PGSERVICE.
#
#   dashboards/check-queries.sh              read-only check of the database PG* names (safe on a live one)
#   dashboards/check-queries.sh --seed       insert sample rows first (into an empty, migrated database)
#   dashboards/check-queries.sh --scratch    create a scratch database, migrate, check empty, seed, check, drop
#
# Needs psql (12+, for --csv) and python3; no Grafana. Exit status 1 when any query fails.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
command -v psql >/dev/null || { echo "check-queries: psql not found (apt-get install postgresql-client)" >&2; exit 1; }
command -v python3 >/dev/null || { echo "check-queries: python3 not found" >&2; exit 1; }
exec python3 - "$root" "$@" <<'PYTHON'
import csv, io, json, os, re, subprocess, sys, glob

USAGE = """usage: dashboards/check-queries.sh [--seed | --scratch] [--dashboard FILE] [--verbose]

Runs every SQL query of the Grafana dashboard (panel targets and query variables) with psql against the
database that libpq's PG* variables (or a service) name; reports every query that fails, exit status 1.
Grafana's macros become plain SQL ($__timeFilter(c) -> c BETWEEN now() - interval '7 days' AND now()) and
each query variable takes the first value its own query returns (empty when none, as in Grafana).

  (default)   read-only: every query runs in a read-only transaction; safe on a live database
  --seed      first insert sample rows into that database (its muwa.jobs must be empty: use a scratch
              database with the migrations applied), then check; every query must then return rows
  --scratch   create a database muwa_dashcheck_PID on that server, apply migrations/*.up.sql, check the
              queries on the empty schema, seed it, check again (rows required), and drop it
"""


def fail(message):
    print(f"check-queries: {message}", file=sys.stderr)
    sys.exit(1)


def psql(sql, database=None, csv_out=True, read_only=True, stdin=None):
    env = dict(os.environ)
    if database:
        env["PGDATABASE"] = database
    options = env.get("PGOPTIONS", "") + " -c statement_timeout=60s"
    if read_only:
        options += " -c default_transaction_read_only=on"
    env["PGOPTIONS"] = options.strip()
    cmd = ["psql", "-X", "-q", "-v", "ON_ERROR_STOP=1"]
    if csv_out:
        cmd.append("--csv")
    cmd += ["-f", "-"] if stdin is not None else ["-c", sql]
    done = subprocess.run(cmd, input=stdin, stdin=None if stdin is not None else subprocess.DEVNULL,
                          capture_output=True, text=True, env=env)
    if done.returncode != 0:
        return None, done.stderr.strip() or f"psql exited with {done.returncode}"
    if not csv_out:
        return [], None
    rows = list(csv.reader(io.StringIO(done.stdout)))
    return rows, None


MACROS = [
    (re.compile(r"\$__timeFilter\(\s*([^()]+?)\s*\)"), r"\1 BETWEEN now() - interval '7 days' AND now()"),
    (re.compile(r"\$__timeFrom\(\)"), "(now() - interval '7 days')"),
    (re.compile(r"\$__timeTo\(\)"), "now()"),
]
VARIABLE = re.compile(r"\$\{(\w+)(?::(\w+))?\}|\$(\w+)|\[\[(\w+)\]\]")


def interpolate(sql, variables, where):
    for pattern, replacement in MACROS:
        sql = pattern.sub(replacement, sql)

    def one(match):
        name = match.group(1) or match.group(3) or match.group(4)
        fmt = match.group(2)
        if name.startswith("__"):
            fail(f"{where}: the macro {match.group(0)} has no plain-SQL equivalent in this script")
        if name not in variables:
            fail(f"{where}: unknown variable {match.group(0)}")
        var = variables[name]
        values = var["values"][:1]  # a repeated panel sees one value
        if fmt in ("raw", "text", "csv"):
            return ",".join(values)
        if fmt == "sqlstring" or (fmt is None and var["multi"]):
            return ",".join("'" + v.replace("'", "''") + "'" for v in values) or "''"
        if fmt is None:
            return ",".join(v.replace("'", "''") for v in values)
        fail(f"{where}: variable format {fmt} is not handled by this script")

    return VARIABLE.sub(one, sql)


def walk(panels):
    for panel in panels:
        yield panel
        yield from walk(panel.get("panels", []))


def check(dashboard, database, require_rows, verbose):
    variables, errors, checked = {}, 0, 0
    for var in dashboard.get("templating", {}).get("list", []):
        name = var["name"]
        if var.get("type") != "query":
            variables[name] = {"values": [], "multi": False}
            continue
        query = var["query"] if isinstance(var["query"], str) else var["query"].get("rawSql") or var["query"].get("query")
        where = f"variable ${name}"
        rows, error = psql(interpolate(query, variables, where), database)
        checked += 1
        if error:
            print(f"FAIL {where}\n{error}\n")
            errors += 1
            variables[name] = {"values": [], "multi": var.get("multi", False)}
            continue
        header, data = rows[0], rows[1:]
        column = header.index("__value") if "__value" in header else 0
        variables[name] = {"values": [r[column] for r in data], "multi": var.get("multi", False)}
        status = "ok  " if data or not require_rows else "EMPTY"
        if require_rows and not data:
            errors += 1
        print(f"{status} {where}: {len(data)} values, first {variables[name]['values'][:1]}")

    for panel in walk(dashboard.get("panels", [])):
        for target in panel.get("targets", []):
            if "rawSql" not in target:
                continue
            where = f"panel {panel['id']} \"{panel.get('title', '')}\" {target.get('refId', '')}"
            sql = interpolate(target["rawSql"], variables, where)
            rows, error = psql(sql, database)
            checked += 1
            if error:
                print(f"FAIL {where}\n{error}\n--- query as run:\n{sql}\n")
                errors += 1
                continue
            header, data = (rows[0], rows[1:]) if rows else ([], [])
            problems = []
            if target.get("format") == "time_series" and "time" not in header:
                problems.append("format time_series needs a column named time")
            x_field = panel.get("options", {}).get("xField")
            if x_field and x_field not in header:
                problems.append(f"options.xField {x_field!r} is not a column")
            if target.get("format") != "time_series":
                for override in panel.get("fieldConfig", {}).get("overrides", []):
                    matcher = override.get("matcher", {})
                    if matcher.get("id") == "byName" and matcher.get("options") not in header:
                        problems.append(f"override for {matcher.get('options')!r}: no such column")
            if require_rows and not data:
                problems.append("no rows")
            if problems:
                errors += 1
                print(f"FAIL {where}: " + "; ".join(problems) + f" (columns: {', '.join(header)})")
            else:
                print(f"ok   {where}: {len(data)} rows" + (f"  [{', '.join(header)}]" if verbose else ""))
    return checked, errors


def main():
    args = sys.argv[2:]
    root = sys.argv[1]
    dashboard_path = os.path.join(root, "dashboards", "muwa.json")
    mode, verbose = "check", False
    while args:
        arg = args.pop(0)
        if arg in ("--seed", "--scratch"):
            mode = arg[2:]
        elif arg == "--dashboard" and args:
            dashboard_path = args.pop(0)
        elif arg in ("-v", "--verbose"):
            verbose = True
        elif arg in ("-h", "--help"):
            print(USAGE)
            return
        else:
            fail(f"unknown argument {arg}\n{USAGE}")
    with open(dashboard_path) as f:
        dashboard = json.load(f)
    seed = SEED

    if mode == "check":
        checked, errors = check(dashboard, None, False, verbose)
    elif mode == "seed":
        rows, error = psql("SELECT count(*) FROM muwa.jobs")
        if error:
            fail(error)
        if rows[1][0] != "0":
            fail(f"--seed wants an empty muwa.jobs (it has {rows[1][0]} rows): use a scratch database, or --scratch")
        _, error = psql(None, csv_out=False, read_only=False, stdin="BEGIN;\n" + seed + "\nCOMMIT;\n")
        if error:
            fail(f"seeding failed:\n{error}")
        checked, errors = check(dashboard, None, True, verbose)
    else:
        scratch = f"muwa_dashcheck_{os.getpid()}"
        maintenance = os.environ.get("PGDATABASE") or "postgres"
        _, error = psql(f'CREATE DATABASE "{scratch}"', maintenance, csv_out=False, read_only=False)
        if error:
            fail(f"cannot create the scratch database: {error}")
        try:
            for path in sorted(glob.glob(os.path.join(root, "migrations", "[0-9]*.up.sql"))):
                _, error = psql(None, scratch, csv_out=False, read_only=False, stdin=open(path).read())
                if error:
                    fail(f"{os.path.basename(path)}: {error}")
            print(f"-- {scratch}: migrations applied; the empty schema")
            checked, errors = check(dashboard, scratch, False, verbose)
            _, error = psql(None, scratch, csv_out=False, read_only=False, stdin="BEGIN;\n" + seed + "\nCOMMIT;\n")
            if error:
                fail(f"seeding failed:\n{error}")
            print(f"-- {scratch}: with sample rows")
            more, more_errors = check(dashboard, scratch, True, verbose)
            checked, errors = checked + more, errors + more_errors
        finally:
            psql(f'DROP DATABASE IF EXISTS "{scratch}"', maintenance, csv_out=False, read_only=False)
    print(f"{checked} queries run, {errors} failed")
    sys.exit(1 if errors else 0)


# Sample rows shaped as muwad writes them (--seed, --scratch).
SEED = r"""
-- Sample rows shaped as muwad writes them (migrations 0001–0005): workers, jobs in every status, a resumed
-- fine-tune's training curve and adapter, three compare_base evaluations, generations, failures.
CREATE FUNCTION pg_temp.finish(job bigint, st text, w text, attempts integer, started timestamptz,
                               finished timestamptz, res jsonb, err text DEFAULT 'ping: failure requested',
                               early text DEFAULT 'failed') RETURNS void LANGUAGE sql AS $f$
    UPDATE muwa.jobs
    SET status = st, attempt = attempts, worker_id = w, started_at = started, finished_at = finished,
        heartbeat_at = finished, progress = CASE WHEN st = 'succeeded' THEN 1 ELSE progress END, result = res
    WHERE id = job;
    INSERT INTO muwa.job_runs (job_id, attempt, worker_id, started_at, finished_at, outcome, error)
    SELECT job, a, w, started - (attempts - a) * interval '10 minutes',
           CASE WHEN a = attempts THEN finished ELSE started - (attempts - a) * interval '10 minutes' + interval '2 minutes' END,
           CASE WHEN a = attempts THEN st ELSE early END,
           CASE WHEN a = attempts AND st <> 'failed' THEN NULL ELSE err END
    FROM generate_series(1, attempts) a;
$f$;

CREATE FUNCTION pg_temp.run(job bigint, w text, started timestamptz, p real, detail jsonb) RETURNS void LANGUAGE sql AS $f$
    UPDATE muwa.jobs
    SET status = 'running', attempt = 1, worker_id = w, started_at = started, heartbeat_at = now() - interval '4 seconds',
        lease_expires_at = now() + interval '56 seconds', progress = p, progress_detail = detail
    WHERE id = job;
    INSERT INTO muwa.job_runs (job_id, attempt, worker_id, started_at) VALUES (job, 1, w, started);
$f$;

-- One evaluate job's outputs, as EvaluateJobExecutor writes them: results, then samples, base first.
CREATE FUNCTION pg_temp.eval_outputs(job bigint, task text, metrics jsonb, n integer, samples integer)
RETURNS void LANGUAGE sql AS $f$
    INSERT INTO muwa.job_outputs (job_id, attempt, idx, output, created_at)
    SELECT job, 1, (row_number() OVER (ORDER BY o.ord, o.sub) - 1)::integer, o.output, now() - interval '2 hours'
    FROM (
        SELECT 1 AS ord, v.ord * 100 + m.ordinality AS sub,
               jsonb_build_object('type', 'eval_result', 'model', 'opt-1.3b', 'adapter', v.adapter, 'task', task,
                                  'method', 'muwa', 'metric', m.key, 'value', m.value -> v.side, 'n', n) AS output
        FROM (VALUES (0, NULL, 'base'), (1, 'muwa', 'adapter')) v (ord, adapter, side),
             jsonb_each(metrics) WITH ORDINALITY m (key, value, ordinality)
        UNION ALL
        SELECT 2, v.ord * 100000 + i,
               jsonb_build_object('type', 'eval_sample', 'model', 'opt-1.3b', 'adapter', v.adapter, 'task', task,
                                  'method', 'muwa', 'index', i,
                                  'example_id', CASE task WHEN 'squad' THEN md5(i::text)::text
                                                         WHEN 'piqa' THEN i::text END,
                                  'input', CASE task WHEN 'squad' THEN 'Which NFL team represented the AFC at Super Bowl 50? #' || i
                                                     WHEN 'piqa' THEN 'How do I ready a guinea pig cage for its new occupants? #' || i
                                                     ELSE 'tokens ' || (512 * i) || '..<' || (512 * i + 1024) END,
                                  'expected', CASE task WHEN 'squad' THEN 'Denver Broncos | Denver Broncos'
                                                        WHEN 'piqa' THEN (1 + i % 2)::text ELSE '' END,
                                  'output', CASE task WHEN 'squad' THEN CASE WHEN (i + v.ord) % 3 = 0 THEN 'The Denver Broncos' ELSE 'Carolina Panthers' END
                                                      WHEN 'piqa' THEN (1 + (i + v.ord) % 2)::text ELSE '' END,
                                  'score', CASE task WHEN 'squad' THEN CASE WHEN (i + v.ord) % 3 = 0 THEN 100 ELSE (i * 37 % 50) END
                                                     WHEN 'piqa' THEN CASE WHEN (i + v.ord) % 2 = 0 THEN 1 ELSE 0 END
                                                     ELSE round(2.4 + ((i * 13 + v.ord * 3) % 10) / 10.0, 4) END,
                                  'details', CASE task WHEN 'squad' THEN jsonb_build_object('final_prediction', 'Denver Broncos', 'exact_match', '0')
                                                       WHEN 'piqa' THEN jsonb_build_object('choice', (1 + (i + v.ord) % 2)::text, 'rule', 'regex')
                                                       ELSE jsonb_build_object('tokens', '1023') END)
        FROM (VALUES (0, NULL, 'base'), (1, 'muwa', 'adapter')) v (ord, adapter, side),
             generate_series(0, samples - 1) i
    ) o;
$f$;

DO $seed$
DECLARE
    w1 constant text := 'box-1:4242:1716200000';
    w2 constant text := 'box-2:777:1716200100';
    ft bigint; ft2 bigint; ev bigint; ev_run bigint; gen bigint; gen_bad bigint; j bigint;
BEGIN
    INSERT INTO muwa.workers (id, host, pid, version, queues, kinds, concurrency, state, status_line, last_seen_at)
    VALUES (w1, 'box-1', 4242, '0.5.0', '{default}', '{generate,finetune,evaluate,ping}', 2, 'running', 'running 2 jobs', now() - interval '3 seconds'),
           (w2, 'box-2', 777, '0.5.0', '{default}', '{generate,ping}', 1, 'running', 'idle', now() - interval '9 seconds'),
           ('box-3:55:1716100000', 'box-3', 55, '0.4.2', '{default}', '{ping}', 1, 'stopped', 'stopped', now() - interval '20 hours');

    -- The Muwa fine-tune, finished: logged every 10 steps, eval_loss every 200; the lease was lost at step 1000
    -- and attempt 2 resumed from the step-950 checkpoint: it recorded the checkpoint's rows 10…950 again and
    -- logged 960…1000 again.
    ft := muwa.enqueue('finetune', '{"base_model": "opt-1.3b", "dataset": {"path": "/srv/data/databricks-dolly-15k.jsonl", "eval_fraction": 0.02}, "output": "muwa", "template": "muwa"}');
    INSERT INTO muwa.job_events (job_id, attempt, run_id, event, created_at)
    SELECT ft, a.attempt, a.attempt,
           jsonb_build_object('type', 'train_step', 'step', s, 'epoch', round(s / 919.0, 4),
                              'loss', round((1.9 + 1.1 * exp(-s / 300.0) + 0.05 * sin(s) + 0.01 * a.attempt)::numeric, 4),
                              'learning_rate', CASE WHEN s <= 100 THEN 2e-4 * s / 100 ELSE round(2e-4 * (1838 - s) / 1738.0, 10) END,
                              'grad_norm', round((0.4 + 0.3 * exp(-s / 500.0))::numeric, 4),
                              'tokens_per_second', 1150 + s % 70,
                              'elapsed_seconds', s * 11.5)
           || CASE WHEN s % 200 = 0 OR s = 1838
                   THEN jsonb_build_object('eval_loss', round((2.0 + 0.9 * exp(-s / 400.0))::numeric, 4)) ELSE '{}' END,
           now() - interval '30 hours' + s * interval '11.5 seconds' + (a.attempt - 1) * interval '10 minutes'
    FROM (SELECT generate_series(10, 1830, 10) AS s UNION ALL SELECT 1838) steps
    CROSS JOIN LATERAL (SELECT 1 AS attempt WHERE s <= 1000 UNION ALL SELECT 2) a
    ORDER BY a.attempt, s;
    UPDATE muwa.jobs SET progress_detail = '{"loss": 1.91, "max_steps": 1838, "step": 1838}' WHERE id = ft;
    PERFORM pg_temp.finish(ft, 'succeeded', w1, 2, now() - interval '27 hours', now() - interval '24 hours',
        '{"adapter": "muwa", "base_model": "opt-1.3b", "eval_loss": 2.0093, "examples": 14714, "final_loss": 1.9342, "loss": 1.9101, "max_steps": 1838, "output": "muwa", "path": "/var/lib/muwad/adapters/muwa", "steps": 1838}',
        'lease expired: worker box-1:4242:1716200000 stopped renewing it', 'lost');
    INSERT INTO muwa.job_outputs (job_id, attempt, idx, output, created_at)
    VALUES (ft, 2, 0, jsonb_build_object(
        'type', 'adapter', 'name', 'muwa', 'base_model', 'opt-1.3b', 'path', '/var/lib/muwad/adapters/muwa',
        'lora_config', '{"base_model_name_or_path": "opt-1.3b", "bias": "none", "lora_alpha": 32, "lora_dropout": 0.05, "peft_type": "LORA", "r": 8, "target_modules": ["q_proj", "v_proj"], "task_type": "CAUSAL_LM"}'::jsonb,
        'training_args', '{"template": "muwa", "dataset": "/srv/data/databricks-dolly-15k.jsonl", "examples": 14714, "eval_examples": 300, "num_train_epochs": 2, "max_steps": 1838, "per_device_train_batch_size": 4, "gradient_accumulation_steps": 4, "learning_rate": 0.0002, "lr_scheduler_type": "linear", "warmup_steps": 100, "seed": 42, "max_length": 1024}'::jsonb,
        'final_loss', 1.9342, 'eval_loss', 2.0093, 'steps', 1838), now() - interval '24 hours');

    -- A second fine-tune, running (alpaca template), at step 560.
    ft2 := muwa.enqueue('finetune', '{"base_model": "opt-1.3b", "dataset": {"path": "/srv/data/databricks-dolly-15k.jsonl", "eval_fraction": 0.02}, "output": "muwa-alpaca"}');
    INSERT INTO muwa.job_events (job_id, attempt, run_id, event, created_at)
    SELECT ft2, 1, 3, jsonb_build_object('type', 'train_step', 'step', s, 'epoch', round(s / 919.0, 4),
                                      'loss', round((1.5 + 1.2 * exp(-s / 250.0))::numeric, 4),
                                      'learning_rate', CASE WHEN s <= 100 THEN 2e-4 * s / 100 ELSE round(2e-4 * (1838 - s) / 1738.0, 10) END,
                                      'grad_norm', 0.5, 'tokens_per_second', 1210, 'elapsed_seconds', s * 12.1)
                   || CASE WHEN s % 200 = 0 THEN '{"eval_loss": 1.71}'::jsonb ELSE '{}' END,
           now() - interval '2 hours' + s * interval '12.1 seconds'
    FROM generate_series(10, 560, 10) s;
    PERFORM pg_temp.run(ft2, w1, now() - interval '2 hours', 560 / 1838.0, '{"loss": 1.62, "max_steps": 1838, "step": 563}');

    -- The three evaluations of the recipe, base and adapter on the same examples (compare_base).
    ev := muwa.enqueue('evaluate', '{"model": "opt-1.3b", "adapter": "muwa", "compare_base": true, "task": "squad", "dataset": {"path": "/srv/data/squad/dev-v1.1.json"}}');
    PERFORM pg_temp.finish(ev, 'succeeded', w1, 1, now() - interval '23 hours', now() - interval '20 hours',
        '{"task": "squad", "method": "muwa", "metrics": {"base": {"f1": 24.587, "exact_match": 9.46}, "adapter": {"f1": 26.234, "exact_match": 11.07}}}');
    PERFORM pg_temp.eval_outputs(ev, 'squad', '{"f1": {"base": 24.587, "adapter": 26.234}, "exact_match": {"base": 9.46, "adapter": 11.07}}', 1057, 30);
    ev := muwa.enqueue('evaluate', '{"model": "opt-1.3b", "adapter": "muwa", "compare_base": true, "task": "piqa", "dataset": {"path": "/srv/data/piqa/valid.jsonl"}}');
    PERFORM pg_temp.finish(ev, 'succeeded', w1, 1, now() - interval '20 hours', now() - interval '18 hours',
        '{"task": "piqa", "method": "muwa", "metrics": {"base": {"accuracy": 0.495, "correct": 910}, "adapter": {"accuracy": 0.532, "correct": 978}}}');
    PERFORM pg_temp.eval_outputs(ev, 'piqa', '{"accuracy": {"base": 0.495, "adapter": 0.532}, "correct": {"base": 910, "adapter": 978}}', 1838, 30);
    ev := muwa.enqueue('evaluate', '{"model": "opt-1.3b", "adapter": "muwa", "compare_base": true, "task": "wikitext", "dataset": {"path": "/srv/data/wikitext-2-raw/wiki.test.raw"}}');
    PERFORM pg_temp.finish(ev, 'succeeded', w1, 1, now() - interval '18 hours', now() - interval '17 hours',
        '{"task": "wikitext", "method": "muwa", "metrics": {"base": {"perplexity": 13.914, "token_perplexity": 13.2, "bits_per_byte": 0.95}, "adapter": {"perplexity": 13.969, "token_perplexity": 13.3, "bits_per_byte": 0.96}}}');
    PERFORM pg_temp.eval_outputs(ev, 'wikitext', '{"perplexity": {"base": 13.914, "adapter": 13.969}, "token_perplexity": {"base": 13.2, "adapter": 13.3}, "bits_per_byte": {"base": 0.95, "adapter": 0.96}}', 287645, 30);
    -- One more, running: PIQA by log-likelihood, in its adapter phase.
    ev_run := muwa.enqueue('evaluate', '{"model": "opt-1.3b", "adapter": "muwa-alpaca", "compare_base": true, "task": "piqa", "method": "loglikelihood", "dataset": {"path": "/srv/data/piqa/valid.jsonl"}}');
    PERFORM pg_temp.run(ev_run, w1, now() - interval '25 minutes', 0.62, '{"phase": "adapter"}');

    -- Generations with the adapter, and a generate job that failed (a permanent error: no retry).
    gen := muwa.enqueue('generate', '{"model": "opt-1.3b", "adapter": "muwa", "template": "alpaca", "prompts": ["Give three tips for staying healthy.", "What is the capital of France?"], "max_new_tokens": 64}');
    PERFORM pg_temp.finish(gen, 'succeeded', w2, 1, now() - interval '3 hours', now() - interval '3 hours' + interval '9 seconds',
        '{"model": "opt-1.3b", "outputs": 2, "generated_tokens": 71, "finish_reasons": ["eos", "eos"]}');
    INSERT INTO muwa.job_outputs (job_id, attempt, idx, output, created_at)
    VALUES (gen, 1, 0, '{"type": "generation", "index": 0, "adapter": "muwa", "prompt": "Give three tips for staying healthy.", "text": "1. Eat a balanced diet. 2. Exercise regularly. 3. Sleep enough.", "token_ids": [2, 134], "prompt_tokens": 44, "completion_tokens": 58, "finish_reason": "eos", "milliseconds": 7300.5}', now() - interval '3 hours'),
           (gen, 1, 1, '{"type": "generation", "index": 1, "adapter": "muwa", "prompt": "What is the capital of France?", "formatted_prompt": "Below is an instruction that describes a task. Write a response that appropriately completes the request.\n\n### Instruction:\nWhat is the capital of France?\n\n### Response:\n", "text": "Paris.", "token_ids": [2, 134], "prompt_tokens": 41, "completion_tokens": 13, "finish_reason": "eos", "milliseconds": 1650}', now() - interval '3 hours');
    gen_bad := muwa.enqueue('generate', '{"model": "opt-13b", "prompt": "Hello"}');
    UPDATE muwa.jobs SET errors = (SELECT jsonb_agg(jsonb_build_object('attempt', a, 'at', now() - interval '5 hours', 'worker', w2,
                                   'message', 'invalid generate payload: model: no model called "opt-13b" in /var/lib/muwad/models'))
                                   FROM generate_series(1, 1) a) WHERE id = gen_bad;
    PERFORM pg_temp.finish(gen_bad, 'failed', w2, 1, now() - interval '5 hours', now() - interval '5 hours' + interval '1 second', NULL,
        'invalid generate payload: model: no model called "opt-13b" in /var/lib/muwad/models');

    -- Monitoring pings over the last two days, a few failed; live ones queued and scheduled.
    FOR i IN 1..60 LOOP
        j := muwa.enqueue('ping', jsonb_build_object('sleep_ms', 100, 'fail', i % 13 = 0));
        PERFORM pg_temp.finish(j, CASE WHEN i % 13 = 0 THEN 'failed' WHEN i % 29 = 0 THEN 'cancelled' ELSE 'succeeded' END,
                               w2, CASE WHEN i % 13 = 0 THEN 3 ELSE 1 END,
                               now() - i * interval '47 minutes' - interval '1 second', now() - i * interval '47 minutes', '{}');
    END LOOP;
    PERFORM muwa.enqueue('generate', '{"model": "opt-1.3b", "prompt": "Hello"}');
    PERFORM muwa.enqueue('generate', '{"model": "opt-1.3b", "prompt": "Bonjour"}', run_at => now() - interval '4 minutes');
    PERFORM muwa.enqueue('ping', '{}', run_at => now() + interval '1 hour');

    UPDATE muwa.workers SET current_jobs = ARRAY[ft2, ev_run] WHERE id = w1;
END;
$seed$;
"""

main()
PYTHON
