#!/usr/bin/env bash
# The main job: the Muwa recipe end to end through SQL, offline, on the committed tiny checkpoint.
#   1. finetune  a LoRA adapter on a 200-record databricks-dolly-15k-format file (registered as "muwa-tiny")
#   2. evaluate  base vs adapter on SQuAD (v1.1 JSON), PIQA (valid.jsonl + labels) and wikitext (raw)
#   3. generate  with the adapter by name, alpaca template
# then prints muwa.train_log, muwa.adapters, muwa.model_comparison and muwa.generations.
#
# The database: a private PostgreSQL unless MUWA_DATABASE_URL or PG* say otherwise (scripts/lib-daemon.sh).
# The state directory (models/, adapters/, jobs/) is .muwa-local/recipe-state (MUWA_STATE_DIR overrides).
# Point MUWA_RECIPE_MODEL at a real OPT checkpoint and MUWA_RECIPE_{DOLLY,SQUAD,PIQA,WIKITEXT} at the real
# files to run the real thing (and drop MUWA_RECIPE_STEPS / MUWA_RECIPE_LIMIT for the full run).
#
#   scripts/recipe.sh
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/lib-daemon.sh

fixtures=$root/Tests/Fixtures
model=${MUWA_RECIPE_MODEL:-$fixtures/models/pre-ln-eval-f32}
dolly=${MUWA_RECIPE_DOLLY:-$fixtures/finetune/dolly-200.jsonl}
squad=${MUWA_RECIPE_SQUAD:-$fixtures/eval/datasets/squad/dev-v1.1.json}
piqa=${MUWA_RECIPE_PIQA:-$fixtures/eval/datasets/piqa/valid.jsonl}
wikitext=${MUWA_RECIPE_WIKITEXT:-$fixtures/eval/datasets/wikitext/wiki.test.raw}
steps=${MUWA_RECIPE_STEPS:-24}
limit=${MUWA_RECIPE_LIMIT:-8}
export MUWA_STATE_DIR=${MUWA_STATE_DIR:-$root/.muwa-local/recipe-state}
mkdir -p "$MUWA_STATE_DIR/models"
ln -sfn "$model" "$MUWA_STATE_DIR/models/recipe-base"

# The daemon reads payload paths only under its roots: the state directory, the model's and the datasets'.
dir_of() { dirname "$(realpath "$1")"; }
start_daemon --concurrency 2 \
    --model-roots "$MUWA_STATE_DIR:$(realpath "$model")" \
    --data-roots "$(dir_of "$dolly"):$(dir_of "$squad"):$(dir_of "$piqa"):$(dir_of "$wikitext")"

train=""
[ -n "$steps" ] && train=", \"train\": {\"max_steps\": $steps, \"warmup_steps\": 4, \"log_every\": 4, \"save_every\": 8, \"learning_rate\": 0.001}"
ft=$(sql "SELECT muwa.enqueue('finetune', '{\"base_model\": \"recipe-base\", \"dataset\": {\"path\": \"$dolly\", \"eval_fraction\": 0.05}, \"output\": \"muwa-tiny\"$train}')")
echo "recipe: fine-tune job $ft" >&2
wait_for "$ft"
show "SELECT step, epoch, round(loss::numeric, 4) AS loss, round(eval_loss::numeric, 4) AS eval_loss, learning_rate, round(tokens_per_second) AS tok_s FROM muwa.train_log WHERE job_id = $ft ORDER BY step"
show "SELECT name, base_model, path, round(final_loss::numeric, 4) AS final_loss, steps, job_id FROM muwa.adapters"

lim=""
[ -n "$limit" ] && lim=", \"limit\": $limit"
evals=()
for spec in "squad:$squad" "piqa:$piqa" "wikitext:$wikitext"; do
    task=${spec%%:*}; path=${spec#*:}
    evals+=("$(sql "SELECT muwa.enqueue('evaluate', '{\"model\": \"recipe-base\", \"adapter\": \"muwa-tiny\", \"task\": \"$task\", \"dataset\": {\"path\": \"$path\"}, \"compare_base\": true$lim}')")")
done
gen=$(sql "SELECT muwa.enqueue('generate', '{\"model\": \"recipe-base\", \"adapter\": \"muwa-tiny\", \"template\": \"alpaca\", \"prompts\": [\"Tell me about rivers.\", \"Who was Ada Lovelace?\"], \"max_new_tokens\": 16}')")
echo "recipe: evaluate jobs ${evals[*]}, generate job $gen" >&2
for id in "${evals[@]}" "$gen"; do wait_for "$id"; done

show "SELECT task, method, metric, round(base::numeric, 4) AS base, round(with_adapter::numeric, 4) AS with_adapter, n FROM muwa.model_comparison ORDER BY task, metric"
show "SELECT job_id, idx, adapter, left(text, 60) AS text, completion_tokens, finish_reason FROM muwa.generations WHERE job_id = $gen ORDER BY idx"
"$bin" status --database-url "$url"
