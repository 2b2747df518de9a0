// CheckpointExport: writes a model (typically one with a LoRA adapter merged in) as a Hugging Face
// checkpoint directory that transformers' OPTForCausalLM.from_pretrained loads: model.safetensors with
// transformers' key names ("model.decoder.…"; lm_head.weight only when it is not tied to embed_tokens, as
// save_pretrained writes it), config.json with torch_dtype set, and the source directory's tokenizer and
// generation files copied.
import Foundation

public enum CheckpointExport {
    /// Files copied as they are from the source checkpoint when present.
    static let companionFiles = [
        "vocab.json", "merges.txt", "tokenizer.json", "tokenizer_config.json", "special_tokens_map.json",
        "generation_config.json",
    ]

    /// transformers' torch_dtype name for the stored dtype.
    static func torchDType(_ dtype: DType) -> String {
        switch dtype {
        case .bf16: return "bfloat16"
        case .f16: return "float16"
        default: return "float32"
        }
    }

    /// Writes `model` to `output` (created; must not hold a checkpoint already) in `dtype` (F32, F16 or BF16).
    public static func write(_ model: OPTModel, sourceDirectory: String, to output: String, dtype: DType) throws {
        guard [.f32, .f16, .bf16].contains(dtype) else {
            throw EngineError.invalidRequest("export dtype must be f32, f16 or bf16, got \(dtype.rawValue)")
        }
        let fm = FileManager.default
        guard !fm.fileExists(atPath: output + "/model.safetensors"), !fm.fileExists(atPath: output + "/config.json")
        else {
            throw EngineError.invalidRequest("\(output) already holds a checkpoint; export into a new directory")
        }
        do {
            try fm.createDirectory(atPath: output, withIntermediateDirectories: true)
        } catch {
            throw EngineError.invalidRequest("cannot create \(output): \(error.localizedDescription)")
        }
        let tensors = namedTensors(model.weights, config: model.config).map { ($0.name, convert($0.tensor, to: dtype)) }
        try SafetensorsFile.write(
            path: output + "/model.safetensors", tensors: tensors.map { (name: $0.0, tensor: $0.1) },
            metadata: ["format": "pt"])
        try writeConfig(from: sourceDirectory, to: output, dtype: dtype)
        for name in companionFiles where fm.fileExists(atPath: sourceDirectory + "/" + name) {
            let data = try FileAccess.readFile(sourceDirectory + "/" + name, limit: 64 << 20)
            try data.write(to: URL(fileURLWithPath: output + "/" + name), options: .atomic)
        }
    }

    /// Every tensor under transformers' OPTForCausalLM names.
    static func namedTensors(_ w: OPTWeights, config: OPTConfig) -> [(name: String, tensor: Tensor)] {
        let p = "model.decoder."
        var out: [(name: String, tensor: Tensor)] = [
            (p + "embed_tokens.weight", w.embedTokens), (p + "embed_positions.weight", w.embedPositions),
        ]
        if let t = w.projectIn { out.append((p + "project_in.weight", t)) }
        if let t = w.projectOut { out.append((p + "project_out.weight", t)) }
        func layerNorm(_ name: String, _ ln: LayerNormWeights?) {
            if let weight = ln?.weight { out.append((name + ".weight", weight)) }
            if let bias = ln?.bias { out.append((name + ".bias", bias)) }
        }
        func linear(_ name: String, _ l: LinearWeights) {
            out.append((name + ".weight", l.weight))
            if let bias = l.bias { out.append((name + ".bias", bias)) }
        }
        layerNorm(p + "final_layer_norm", w.lnFinal)
        for (l, layer) in w.layers.enumerated() {
            let q = p + "layers.\(l)."
            linear(q + "self_attn.q_proj", layer.qProj)
            linear(q + "self_attn.k_proj", layer.kProj)
            linear(q + "self_attn.v_proj", layer.vProj)
            linear(q + "self_attn.out_proj", layer.outProj)
            layerNorm(q + "self_attn_layer_norm", layer.lnAttn)
            linear(q + "fc1", layer.fc1)
            linear(q + "fc2", layer.fc2)
            layerNorm(q + "final_layer_norm", layer.lnFfn)
        }
        if w.lmHead.raw != w.embedTokens.raw { out.append(("lm_head.weight", w.lmHead)) }
        return out
    }

    /// `tensor` stored as `dtype` (a copy; rounding to nearest even for BF16 and F16).
    static func convert(_ tensor: Tensor, to dtype: DType) -> Tensor {
        if tensor.dtype == dtype { return tensor }
        let values = tensor.toFloatArray()
        if dtype == .f32 { return Tensor.f32(values, shape: tensor.shape) }
        let region = ByteRegion(allocating: values.count * 2)
        guard let base = region.mutableBase else { return tensor }
        let out = base.bindMemory(to: UInt16.self, capacity: values.count)
        for (i, v) in values.enumerated() { out[i] = dtype == .bf16 ? floatToBF16(v) : floatToF16(v) }
        return Tensor(dtype: dtype, shape: tensor.shape, region: region)
    }

    static func writeConfig(from source: String, to output: String, dtype: DType) throws {
        let data = try FileAccess.readFile(source + "/config.json", limit: 16 << 20)
        guard var object = try? JSONSerialization.jsonObject(with: data) as? [String: Any] else {
            throw EngineError.invalidConfig(path: source + "/config.json", reason: "not a JSON object")
        }
        object["torch_dtype"] = torchDType(dtype)
        let text = try JSONSerialization.data(withJSONObject: object, options: [.prettyPrinted, .sortedKeys])
        try text.write(to: URL(fileURLWithPath: output + "/config.json"), options: .atomic)
    }
}
