#!/usr/bin/env python3
"""PyTorch + transformers throughput on an OPT checkpoint, measured the way `muwad bench` measures.

Prompt processing: one forward pass over the whole prompt (KV cache filled, logits of the last
position only). Decode: greedy steps with the KV cache, one token per row per step; the first new
token comes from the prompt pass, so `--new-tokens M` times M-1 decode steps. The best of
`--repeats` timed runs is reported, after one short warm-up. Computation is float32 unless
`--dtype auto` (the checkpoint's own dtype). Prints one JSON line with the same keys as
`muwad bench --json`:

    python tools/bench/pytorch_bench.py --model DIR --prompt-tokens 128 --new-tokens 64 --threads 2
"""

from __future__ import annotations

import argparse
import inspect
import json
import os
import random
import time


def peak_rss_mib() -> float:
    """Peak resident memory of this process (VmHWM), in MiB, as muwad reports it."""
    with open("/proc/self/status", encoding="ascii") as f:
        for line in f:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    return float("nan")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", required=True)
    parser.add_argument("--prompt-tokens", type=int, default=128)
    parser.add_argument("--new-tokens", type=int, default=64)
    parser.add_argument("--batch", type=int, default=1)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--dtype", choices=["float32", "auto"], default="float32",
                        help="computation dtype: float32 (like muwad) or the checkpoint's own")
    parser.add_argument("--attn", choices=["sdpa", "eager"], default="sdpa")
    parser.add_argument("--seed", type=int, default=1234)
    parser.add_argument("--compute", choices=["f32", "bf16"], default="f32",
                        help="bf16: each forward inside torch.autocast('cpu', dtype=torch.bfloat16), like muwad --compute bf16")
    args = parser.parse_args()

    os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
    import torch
    import transformers
    from transformers import OPTForCausalLM
    from transformers.utils import logging

    logging.set_verbosity_error()
    torch.set_num_threads(args.threads)
    torch.set_num_interop_threads(1)

    def compute_context():
        return torch.autocast("cpu", dtype=torch.bfloat16, enabled=args.compute == "bf16")

    t0 = time.perf_counter()
    dtype = torch.float32 if args.dtype == "float32" else "auto"
    model = OPTForCausalLM.from_pretrained(args.model, dtype=dtype, attn_implementation=args.attn).eval()
    load_s = time.perf_counter() - t0
    cfg = model.config
    if args.prompt_tokens < 1 or args.new_tokens < 1 or args.prompt_tokens + args.new_tokens > cfg.max_position_embeddings:
        raise SystemExit(f"prompt-tokens + new-tokens must fit in {cfg.max_position_embeddings} positions")

    # BOS then seeded random ordinary tokens, like muwad bench.
    rng = random.Random(args.seed)
    upper = min(cfg.vocab_size, 50260) - 4
    prompt = [cfg.bos_token_id] + [4 + rng.randrange(upper) for _ in range(args.prompt_tokens - 1)]
    ids = torch.tensor([prompt] * args.batch)

    # transformers 5.2x renamed the forward's `past_key_values` to `cache`; accept either.
    cache_kw = "cache" if "cache" in inspect.signature(model.forward).parameters else "past_key_values"

    @torch.inference_mode()
    def run(ids: torch.Tensor, new_tokens: int) -> tuple[float, float]:
        t0 = time.perf_counter()
        with compute_context():
            out = model(input_ids=ids, use_cache=True, logits_to_keep=1)
        t1 = time.perf_counter()
        cache = out.past_key_values
        nxt = out.logits[:, -1].argmax(dim=-1, keepdim=True)
        for _ in range(new_tokens - 1):
            with compute_context():
                out = model(input_ids=nxt, use_cache=True, **{cache_kw: cache})
            cache = out.past_key_values
            nxt = out.logits[:, -1].argmax(dim=-1, keepdim=True)
        t2 = time.perf_counter()
        return t1 - t0, t2 - t1

    run(ids[:, : min(8, args.prompt_tokens)], 2)  # warm-up
    best_prefill = best_decode = float("inf")
    for _ in range(max(1, args.repeats)):
        prefill, decode = run(ids, args.new_tokens)
        best_prefill = min(best_prefill, prefill)
        best_decode = min(best_decode, decode)
    steps = max(args.new_tokens - 1, 1)
    with open(os.path.join(args.model, "config.json"), encoding="utf-8") as f:
        on_disk = json.load(f)
    weights_dtype = on_disk.get("dtype") or on_disk.get("torch_dtype") or "?"
    print(json.dumps({
        "engine": "pytorch",
        "model": args.model,
        "weights_dtype": weights_dtype,
        "compute_dtype": str(next(model.parameters()).dtype).replace("torch.", ""),
        "attn": args.attn,
        "compute": args.compute,
        "batch": args.batch,
        "prompt_tokens": args.prompt_tokens,
        "new_tokens": args.new_tokens,
        "threads": args.threads,
        "load_s": load_s,
        "prompt_tokens_per_s": args.batch * args.prompt_tokens / best_prefill,
        "decode_tokens_per_s": args.batch * steps / (best_decode if args.new_tokens > 1 else float("inf")),
        "decode_ms_per_step": 1000 * best_decode / steps,
        "peak_rss_mib": peak_rss_mib(),
        "torch": torch.__version__,
        "transformers": transformers.__version__,
    }))


if __name__ == "__main__":
    main()
