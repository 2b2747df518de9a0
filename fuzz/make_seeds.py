#!/usr/bin/env python3
"""Writes the seed corpora fuzz/corpus/TARGET/ from the test fixtures (Tests/Fixtures), cut down to small
files. Multi-file inputs are joined with FuzzInput's separator; a leading selector byte picks variants
(Sources/FuzzTargets/*Fuzz.swift says what each bit means). Run from the repository root; it only writes
fuzz/corpus/ (the committed seeds are its output). Standard library only."""
import json, os, pickle, struct, sys, types, zipfile, io

SEP = b"\n--8<--\n"
FIX = "Tests/Fixtures"
OUT = "fuzz/corpus"


def read(path):
    with open(os.path.join(FIX, path), "rb") as f:
        return f.read()


def write(target, name, data):
    d = os.path.join(OUT, target)
    os.makedirs(d, exist_ok=True)
    with open(os.path.join(d, name), "wb") as f:
        f.write(data)


def join(parts, selector=None):
    return (bytes([selector]) if selector is not None else b"") + SEP.join(parts)


def safetensors(tensors, metadata=None):
    """tensors: name -> (dtype, shape, raw bytes)."""
    header, blobs, offset = {}, [], 0
    if metadata:
        header["__metadata__"] = metadata
    for name, (dtype, shape, raw) in tensors.items():
        header[name] = {"dtype": dtype, "shape": shape, "data_offsets": [offset, offset + len(raw)]}
        blobs.append(raw)
        offset += len(raw)
    text = json.dumps(header, separators=(",", ":")).encode()
    return struct.pack("<Q", len(text)) + text + b"".join(blobs)


def f32(*values):
    return struct.pack("<%df" % len(values), *values)


# A torch zip written the way torch.save lays it out, without torch: the pickle names
# torch._utils._rebuild_tensor_v2 and torch.FloatStorage through stand-in modules, storages are
# persistent ids ("storage", type, key, location, numel) and each storage is data/<key>.
def _fake(module, name):
    """A function pickle writes as GLOBAL module.name (it checks the name resolves to the same object)."""
    mod = sys.modules.setdefault(module, types.ModuleType(module))

    def stand_in(*args):
        raise TypeError("stand-in only")

    stand_in.__module__, stand_in.__qualname__, stand_in.__name__ = module, name, name
    setattr(mod, name, stand_in)
    return stand_in


class _Storage:
    def __init__(self, key, numel):
        self.key, self.numel = key, numel


class _Tensor:
    def __init__(self, storage, offset, size, stride):
        self.args = (storage, offset, tuple(size), tuple(stride), False, {})

    def __reduce__(self):
        return (_fake("torch._utils", "_rebuild_tensor_v2"), self.args)


def torch_zip(tensors, name="archive"):
    """tensors: name -> (values, size, stride); float32 storages."""
    float_storage = _fake("torch", "FloatStorage")
    storages, state = {}, {}
    for i, (tname, (values, size, stride)) in enumerate(tensors.items()):
        key = str(i)
        storages[key] = f32(*values)
        state[tname] = _Tensor(_Storage(key, len(values)), 0, size, stride)

    class P(pickle.Pickler):
        def persistent_id(self, obj):
            if isinstance(obj, _Storage):
                return ("storage", float_storage, obj.key, "cpu", obj.numel)
            return None

    buf = io.BytesIO()
    P(buf, protocol=2).dump(state)
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", zipfile.ZIP_STORED) as z:
        def put(member, data):  # a fixed date, so the seeds are the same on every run
            z.writestr(zipfile.ZipInfo(name + "/" + member, date_time=(1980, 1, 1, 0, 0, 0)), data)
        put("data.pkl", buf.getvalue())
        put("byteorder", "little")
        for key, raw in storages.items():
            put("data/" + key, raw)
        put("version", "3\n")
    return out.getvalue()


def main():
    # safetensors: the fixture adapters (real files), a tiny F32/F16/BF16 file, and a sharded checkpoint.
    for name in ["pre-ln-qv", "post-ln-qv", "pre-ln-bias-all"]:
        write("safetensors", name + ".safetensors", read("lora/adapters/%s/adapter_model.safetensors" % name))
    write("safetensors", "tiny-dtypes.safetensors", safetensors({
        "a": ("F32", [2, 2], f32(1, 2, 3, 4)),
        "b": ("F16", [3], struct.pack("<3e", 1.0, -2.0, 0.5)),
        "c": ("BF16", [1, 2], b"\x80\x3f\x00\x40"),
        "d": ("F32", [0], b""),
    }, metadata={"format": "pt"}))
    shard1 = safetensors({"decoder.embed_tokens.weight": ("F32", [2, 2], f32(1, 2, 3, 4))})
    shard2 = safetensors({"decoder.final_layer_norm.weight": ("F32", [2], f32(1, 1))})
    index = json.dumps({"metadata": {"total_size": 24}, "weight_map": {
        "decoder.embed_tokens.weight": "model-00001-of-00002.safetensors",
        "decoder.final_layer_norm.weight": "model-00002-of-00002.safetensors"}}).encode()
    write("safetensors", "sharded", join([index, shard1, shard2]))

    # torch: the fixture adapter .bin (torch.save), a handmade zip with a strided tensor, and a sharded pair.
    write("torch", "adapter.bin", read("lora/adapters/pre-ln-all-bin/adapter_model.bin"))
    write("torch", "tiny.bin", torch_zip({"w": ([1, 2, 3, 4, 5, 6], [2, 3], [3, 1]),
                                          "t": ([1, 2, 3, 4, 5, 6], [3, 2], [1, 3])}))
    bin1 = torch_zip({"decoder.embed_tokens.weight": ([1, 2, 3, 4], [2, 2], [2, 1])})
    bin2 = torch_zip({"decoder.final_layer_norm.weight": ([1, 1], [2], [1])})
    index = json.dumps({"weight_map": {
        "decoder.embed_tokens.weight": "pytorch_model-00001-of-00002.bin",
        "decoder.final_layer_norm.weight": "pytorch_model-00002-of-00002.bin"}}).encode()
    write("torch", "sharded", join([index, bin1, bin2]))

    # config: every published OPT size and the fixture models.
    for name in sorted(os.listdir(os.path.join(FIX, "configs"))):
        if name.startswith("opt-"):
            write("config", name, read("configs/" + name))
    for model in ["pre-ln-f32", "post-ln-f32"]:
        write("config", model + ".json", read("models/%s/config.json" % model))

    # tokenizer: OPT's vocabulary cut to its first 1000 ids, the merges among them, the special-token files.
    vocab = json.loads(read("tokenizer/vocab.json"))
    small = {t: i for t, i in vocab.items() if i < 1000}
    merges = [l for l in read("tokenizer/merges.txt").decode().split("\n")[1:] if l]
    small_merges = [l for l in merges if all(p in small for p in l.split(" ")) and l.replace(" ", "") in small]
    vocab_json = json.dumps(small, ensure_ascii=False).encode()
    merges_txt = ("#version: 0.2\n" + "\n".join(small_merges) + "\n").encode()
    config = read("tokenizer/tokenizer_config.json")
    special = read("tokenizer/special_tokens_map.json")
    cases = json.loads(read("tokenizer/cases.json"))
    texts = [c["text"].encode() for c in cases[:40]]
    text = b"Hello, world! </s>  It's a <pad>test\xc3\xa9 \xf0\x9f\x98\x80\r\n\t12 345 don't"
    write("tokenizer", "files-plain", join([vocab_json, merges_txt, text], selector=0))
    write("tokenizer", "files-configs", join([vocab_json, merges_txt, config, special, text], selector=6 | 8))
    write("tokenizer", "files-cases", join([vocab_json, merges_txt, b"\n".join(texts)], selector=16))
    # The same, cut to ids below 300 (bytes, specials and the first merges): small inputs fuzz faster.
    tiny = {t: i for t, i in vocab.items() if i < 300}
    tiny_merges = [l for l in small_merges if all(p in tiny for p in l.split(" ")) and l.replace(" ", "") in tiny]
    write("tokenizer", "files-tiny", join([json.dumps(tiny, ensure_ascii=False).encode(),
                                           ("\n".join(tiny_merges) + "\n").encode(), b"the cat's hat \xe2\x80\x94 ok"],
                                          selector=0))
    tj = json.loads(read("tokenizer-json/tokenizer.json"))
    tj_tiny = dict(tj, model=dict(tj["model"], vocab=tiny, merges=[l.split(" ") for l in tiny_merges]))
    write("tokenizer", "json-tiny", join([json.dumps(tj_tiny, ensure_ascii=False).encode(), b"in the end"], selector=1))
    tj["model"]["vocab"] = small
    tj["model"]["merges"] = [l.split(" ") for l in small_merges]
    tj_small = json.dumps(tj, ensure_ascii=False).encode()
    write("tokenizer", "json-pairs", join([tj_small, text], selector=1))
    tj["model"]["merges"] = small_merges
    tj["post_processor"] = {"type": "Sequence", "processors": [tj["post_processor"]]}
    write("tokenizer", "json-strings-config", join([json.dumps(tj, ensure_ascii=False).encode(),
                                                    read("tokenizer-json/tokenizer_config.json"), text], selector=3))

    # adapter: the fixture adapters with the model shape they were made for.
    for name, selector in [("pre-ln-qv", 0), ("post-ln-qv", 2), ("post-ln-all", 2), ("pre-ln-bias-all", 0),
                           ("pre-ln-all-bin", 1)]:
        d = "lora/adapters/%s/" % name
        weights = d + ("adapter_model.bin" if selector & 1 else "adapter_model.safetensors")
        write("adapter", name, join([read(d + "adapter_config.json"), read(weights)], selector=selector))

    # payload: one of each kind and their variants, as the README documents them.
    payloads = {
        "generate-one": {"model": "opt-1.3b", "prompt": "Hello"},
        "generate-full": {"model": "/srv/models/opt-1.3b", "adapter": "dolly", "template": "alpaca",
                          "prompts": ["Name three colors.", {"instruction": "Summarize.", "input": "text"}],
                          "max_new_tokens": 20, "do_sample": True, "temperature": 0.7, "top_k": 50, "top_p": 0.9,
                          "repetition_penalty": 1.1, "seed": 7, "stop": ["\n\n"], "stop_at_eos": True},
        "finetune": {"base_model": "opt-1.3b", "dataset": {"path": "/data/dolly.jsonl", "eval_fraction": 0.02},
                     "output": "muwa", "template": "alpaca", "train_on_prompt": False,
                     "lora": {"r": 8, "lora_alpha": 32, "lora_dropout": 0.05, "target_modules": ["q_proj", "v_proj"]},
                     "train": {"num_train_epochs": 2, "per_device_train_batch_size": 4,
                               "gradient_accumulation_steps": 4, "learning_rate": 2e-4, "warmup_steps": 100,
                               "log_every": 10, "save_every": 50}},
        "finetune-short": {"base_model": "m", "dataset": "/data/d.jsonl", "output": "a", "template": "text"},
        "evaluate-squad": {"model": "opt-1.3b", "adapter": "muwa", "task": "squad",
                           "dataset": {"path": "/data/squad/dev-v1.1.json"}, "squad_stride": 10,
                           "max_new_tokens": 32, "repetition_penalty": 1.2},
        "evaluate-piqa": {"model": "/srv/models/opt-1.3b", "task": "piqa", "method": "loglikelihood",
                          "dataset": {"path": "/data/piqa/valid.jsonl", "labels": "/data/piqa/valid-labels.lst"},
                          "limit": 500},
        "evaluate-wikitext": {"model": "opt-1.3b", "adapter": "muwa", "compare_base": True, "task": "wikitext",
                              "dataset": "/data/wikitext-2-raw/wiki.test.raw", "max_length": 1024, "stride": 512},
        "json-values": {"a": [None, True, False, 1e300, -0.0, 1.5, "\u0000\u001f\"\\\ud7ff"], "b": {}},
    }
    for name, payload in payloads.items():
        write("payload", name + ".json", json.dumps(payload, ensure_ascii=False).encode())

    # dataset: the fixtures' first records, one input per reader (selector: see DatasetFuzz.swift).
    dolly = b"".join(read("finetune/dolly-200.jsonl").splitlines(True)[:6])
    write("dataset", "dolly-muwa", bytes([0]) + dolly)
    write("dataset", "dolly-alpaca", bytes([6 + 18 * 13]) + dolly)
    write("dataset", "dolly-text", bytes([12 + 18]) + b'{"text": "Hello world"}\n\n{"text": "A\\u00e9 \\ud83d\\ude00"}\r\n')
    squad = json.loads(read("eval/datasets/squad/dev-v1.1.json"))
    squad["data"] = squad["data"][:1]
    squad["data"][0]["paragraphs"] = squad["data"][0]["paragraphs"][:2]
    write("dataset", "squad-json", bytes([1]) + json.dumps(squad, ensure_ascii=False).encode())
    write("dataset", "squad-jsonl", bytes([2]) + b"".join(read("eval/datasets/squad/validation.jsonl").splitlines(True)[:3]))
    write("dataset", "piqa-labels", bytes([3]) + join([read("eval/datasets/piqa/valid.jsonl"), read("eval/datasets/piqa/valid-labels.lst")]))
    write("dataset", "piqa-inline", bytes([3]) + read("eval/datasets/piqa/validation.jsonl"))
    write("dataset", "wikitext-raw", bytes([4]) + read("eval/datasets/wikitext/wiki.test.raw"))
    write("dataset", "wikitext-newlines", bytes([4]) + read("eval/datasets/wikitext/newlines.raw"))
    write("dataset", "wikitext-jsonl", bytes([5]) + read("eval/datasets/wikitext/test.jsonl"))


if __name__ == "__main__":
    main()
