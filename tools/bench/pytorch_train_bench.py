#!/usr/bin/env python3
"""PyTorch + transformers + peft throughput of one LoRA training step, measured as `muwad bench --train`.

One optimizer step on `--batch` sequences of `--seq-len` seeded random tokens (BOS first, loss on every
next token): forward in train mode, backward to the LoRA matrices only (the base is frozen), global
gradient-norm clipping at 1.0, AdamW (lr 2e-4), zero_grad. LoRA r `--lora-r`, alpha 2r, dropout 0.05 on
the targets of `--lora-targets`. OPT's own dropout is set to 0, as muwad's benchmark runs without it,
so both do the same arithmetic. float32. The best of `--repeats` steps after one warm-up step.
Prints one JSON line with the keys of `muwad bench --train --json`:

    python tools/bench/pytorch_train_bench.py --model DIR --batch 4 --seq-len 256 --threads 2
"""

from __future__ import annotations

import argparse
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
    parser.add_argument("--batch", type=int, default=4)
    parser.add_argument("--seq-len", type=int, default=256)
    parser.add_argument("--lora-r", type=int, default=8)
    parser.add_argument("--lora-targets", default="q_proj,v_proj")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--attn", choices=["sdpa", "eager"], default="sdpa")
    parser.add_argument("--gradient-checkpointing", action="store_true")
    parser.add_argument("--seed", type=int, default=1234)
    parser.add_argument("--compute", choices=["f32", "bf16"], default="f32",
                        help="bf16: each forward inside torch.autocast('cpu', dtype=torch.bfloat16), like muwad --compute bf16")
    args = parser.parse_args()

    os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
    import peft
    import torch
    import transformers
    from peft import LoraConfig, get_peft_model
    from transformers import OPTForCausalLM
    from transformers.utils import logging

    logging.set_verbosity_error()
    torch.set_num_threads(args.threads)
    torch.set_num_interop_threads(1)

    def compute_context():
        return torch.autocast("cpu", dtype=torch.bfloat16, enabled=args.compute == "bf16")
    torch.manual_seed(args.seed)

    t0 = time.perf_counter()
    model = OPTForCausalLM.from_pretrained(args.model, dtype=torch.float32, attn_implementation=args.attn, dropout=0.0)
    load_s = time.perf_counter() - t0
    if args.gradient_checkpointing:
        model.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
        model.enable_input_require_grads()
    targets = [t.strip() for t in args.lora_targets.split(",") if t.strip()]
    model = get_peft_model(model, LoraConfig(r=args.lora_r, lora_alpha=2 * args.lora_r, lora_dropout=0.05,
                                             target_modules=targets, task_type="CAUSAL_LM"))
    model.train()
    cfg = model.config
    if not 2 <= args.seq_len <= cfg.max_position_embeddings:
        raise SystemExit(f"--seq-len must be 2…{cfg.max_position_embeddings}")

    rng = random.Random(args.seed)
    upper = min(cfg.vocab_size, 50260) - 4
    rows = [[cfg.bos_token_id] + [4 + rng.randrange(upper) for _ in range(args.seq_len - 1)] for _ in range(args.batch)]
    ids = torch.tensor(rows)
    mask = torch.ones_like(ids)
    params = [p for p in model.parameters() if p.requires_grad]
    opt = torch.optim.AdamW(params, lr=2e-4, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.0)

    def step() -> float:
        t = time.perf_counter()
        with compute_context():
            loss = model(input_ids=ids, attention_mask=mask, labels=ids).loss
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, 1.0)
        opt.step()
        opt.zero_grad(set_to_none=True)
        return time.perf_counter() - t

    step()  # warm-up
    best = min(step() for _ in range(max(1, args.repeats)))
    with open(os.path.join(args.model, "config.json"), encoding="utf-8") as f:
        on_disk = json.load(f)
    print(json.dumps({
        "engine": "pytorch+peft",
        "mode": "train",
        "model": args.model,
        "weights_dtype": on_disk.get("dtype") or on_disk.get("torch_dtype") or "?",
        "attn": args.attn,
        "compute": args.compute,
        "batch": args.batch,
        "seq_len": args.seq_len,
        "lora_r": args.lora_r,
        "lora_targets": ",".join(targets),
        "trainable_params": sum(p.numel() for p in params),
        "gradient_checkpointing": args.gradient_checkpointing,
        "threads": args.threads,
        "load_s": load_s,
        "step_s": best,
        "train_tokens_per_s": args.batch * args.seq_len / best,
        "peak_rss_mib": peak_rss_mib(),
        "torch": torch.__version__,
        "transformers": transformers.__version__,
        "peft": peft.__version__,
    }))


if __name__ == "__main__":
    main()
