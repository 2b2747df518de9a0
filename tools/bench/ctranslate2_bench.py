#!/usr/bin/env python3
"""CTranslate2 throughput on an OPT checkpoint, measured the way `muwad bench` measures.

The checkpoint is converted into a temporary directory first (deleted afterwards), with CTranslate2's own
transformers converter; the vocabulary is padded with placeholder tokens up to the model's vocab_size when
the tokenizer has fewer entries (CTranslate2 insists on one token per row of the embedding). Prompt
processing: one `generate_batch` of a single new token with the prompt forwarded at once (KV cache filled,
last position's logits). Decode: `--new-tokens` greedy tokens (EOS suppressed by min_length), minus the
prompt pass, over the new-tokens-1 steps. Best of `--repeats` after a warm-up. Prints one JSON line with
the keys of `muwad bench --json`:

    python tools/bench/ctranslate2_bench.py --model DIR --compute int8 --prompt-tokens 512 --threads 2

--compute: float32 | int8 | bfloat16 | int8_bfloat16 | int8_float32 (CTranslate2's compute_type).
"""

from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import tempfile
import time


def peak_rss_mib() -> float:
    with open("/proc/self/status", encoding="ascii") as f:
        for line in f:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    return float("nan")


def convert(model_dir: str, out_dir: str) -> None:
    """CTranslate2's converter, with the vocabulary padded to the embedding's rows."""
    from ctranslate2.converters import transformers as ct2t

    loader = ct2t.OPTLoader
    original = loader.get_vocabulary

    def padded(self, model, tokenizer):
        tokens = original(self, model, tokenizer)
        i = 0
        while len(tokens) < model.config.vocab_size:
            symbol = "madeupword{:04d}".format(i)
            if symbol not in tokens:
                tokens.append(symbol)
            i += 1
        return tokens

    loader.get_vocabulary = padded
    # weights stored as float32; the compute type (int8, bf16, …) is chosen when loading
    ct2t.TransformersConverter(model_dir).convert(out_dir, quantization="float32", force=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", required=True)
    parser.add_argument("--prompt-tokens", type=int, default=128)
    parser.add_argument("--new-tokens", type=int, default=64)
    parser.add_argument("--batch", type=int, default=1)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--compute", default="float32")
    parser.add_argument("--seed", type=int, default=1234)
    args = parser.parse_args()

    os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
    import ctranslate2
    from transformers.utils import logging

    logging.set_verbosity_error()
    work = tempfile.mkdtemp(prefix="muwa-ct2-")
    try:
        t0 = time.perf_counter()
        convert(args.model, work)
        convert_s = time.perf_counter() - t0
        t0 = time.perf_counter()
        generator = ctranslate2.Generator(work, device="cpu", compute_type=args.compute, intra_threads=args.threads,
                                          inter_threads=1)
        load_s = time.perf_counter() - t0
        with open(os.path.join(work, "vocabulary.json"), encoding="utf-8") as f:
            vocab = json.load(f)
        with open(os.path.join(work, "config.json"), encoding="utf-8") as f:
            bos = json.load(f).get("bos_token", "</s>")

        # the same deterministic prompt as muwad bench: BOS, then seeded ordinary tokens
        rng = random.Random(args.seed)
        upper = min(len(vocab), 50260) - 4
        ids = [4 + rng.randrange(upper) for _ in range(args.prompt_tokens - 1)]
        prompt = [bos] + [vocab[i] for i in ids]
        batch = [prompt] * args.batch

        def run(new_tokens: int) -> float:
            t = time.perf_counter()
            generator.generate_batch(batch, max_length=new_tokens, min_length=new_tokens,
                                     include_prompt_in_result=False, sampling_topk=1)
            return time.perf_counter() - t

        run(2)  # warm-up
        best_prefill = min(run(1) for _ in range(max(1, args.repeats)))
        best_total = min(run(args.new_tokens) for _ in range(max(1, args.repeats)))
        steps = max(args.new_tokens - 1, 1)
        # the decode steps' time is a difference of two timings: with few new tokens it can fall inside their
        # spread (≤ 0), and then there is no decode figure (null, printed "?") rather than an absurd rate
        decode_s = best_total - best_prefill
        print(json.dumps({
            "engine": f"ctranslate2 {ctranslate2.__version__}",
            "compute": args.compute,
            "weights_dtype": args.compute,
            "batch": args.batch, "prompt_tokens": args.prompt_tokens, "new_tokens": args.new_tokens,
            "threads": args.threads,
            "convert_s": convert_s, "load_s": load_s,
            "prompt_tokens_per_s": args.batch * args.prompt_tokens / best_prefill,
            "decode_tokens_per_s": args.batch * steps / decode_s if decode_s > 0 else None,
            "decode_ms_per_step": 1000 * decode_s / steps if decode_s > 0 else None,
            "peak_rss_mib": peak_rss_mib(),
        }, sort_keys=True))
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
