// InstructionDataset: a fine-tune job's JSONL file turned into token sequences with labels.
// Records are databricks-dolly-15k's (`instruction`, `context`, `response`, `category`) unless the
// template is `text` (a `text` field). Templates:
//   muwa   — the Muwa notebook exactly: only `instruction` is tokenized (BOS prepended, no EOS,
//            truncated at max_length), labels = inputs (the causal-LM collator).
//   alpaca — the full Alpaca prompt (with the input variant when `context` is non-empty) followed by the
//            response and EOS; by default only the response tokens (and EOS) count in the loss.
//   text   — a `text` field, BOS prepended, EOS appended, every token in the loss.
import Foundation
import LoRAOps
import OPTEngine

public enum FineTuneTemplate: String, Sendable, CaseIterable {
    case muwa, alpaca, text
}

public struct InstructionDataset: Sendable {
    public var examples: [TrainingExample]
    /// Records whose labels were all dropped by truncation (they add nothing to the loss).
    public var emptyAfterTruncation: Int

    /// Reads `path` and tokenizes every record. Errors name the file and the 1-based line.
    public static func load(
        path: String, template: FineTuneTemplate, tokenizer: BPETokenizer, maxLength: Int,
        trainOnPrompt: Bool = false
    ) throws -> InstructionDataset {
        guard FileManager.default.fileExists(atPath: path), !DatasetFiles.isDirectory(path) else {
            throw EvaluationError.missingFile(path: path)
        }
        let records = try DatasetFiles.jsonObjects(path)
        guard !records.isEmpty else { throw EvaluationError.emptyDataset(path: path) }
        var examples: [TrainingExample] = []
        examples.reserveCapacity(records.count)
        var empty = 0
        for (line, object) in records {
            let record = JSONRecord(path: path, line: line, object: object)
            let example = try tokenize(
                record, template: template, tokenizer: tokenizer, maxLength: maxLength,
                trainOnPrompt: trainOnPrompt)
            if !example.labels.dropFirst().contains(where: { $0 != -100 }) { empty += 1 }
            examples.append(example)
        }
        guard empty < examples.count else {
            throw EvaluationError.malformedFile(
                path: path, location: "",
                reason: "no record has a token to learn from after truncation to \(maxLength) tokens")
        }
        return InstructionDataset(examples: examples, emptyAfterTruncation: empty)
    }

    static func tokenize(
        _ r: JSONRecord, template: FineTuneTemplate, tokenizer: BPETokenizer, maxLength: Int,
        trainOnPrompt: Bool
    ) throws -> TrainingExample {
        switch template {
        case .muwa:
            let ids = Array(tokenizer.encode(try r.string("instruction")).prefix(maxLength))
            return TrainingExample(inputIds: ids)
        case .text:
            let ids = Array((tokenizer.encode(try r.string("text")) + [tokenizer.eosTokenId]).prefix(maxLength))
            return TrainingExample(inputIds: ids)
        case .alpaca:
            let prompt = PromptTemplate.alpaca.prompt(
                instruction: try r.string("instruction"),
                input: try r.optionalString("context"))
            let response = try r.string("response")
            let promptIds = tokenizer.encode(prompt)
            let responseIds = tokenizer.encode(response, addBOS: false) + [tokenizer.eosTokenId]
            let ids = Array((promptIds + responseIds).prefix(maxLength))
            let labels = ids.enumerated().map { i, id in trainOnPrompt || i >= promptIds.count ? id : -100 }
            return TrainingExample(inputIds: ids, labels: labels)
        }
    }

    /// Splits off a held-out fraction (deterministic for a seed): (train, eval).
    public func split(evalFraction: Double, seed: UInt64) -> ([TrainingExample], [TrainingExample]) {
        guard evalFraction > 0, examples.count > 1 else { return (examples, []) }
        var rng = SeededRNG(seed: seed ^ 0x5EED_E7A1)
        var order = Array(examples.indices)
        for i in stride(from: order.count - 1, to: 0, by: -1) {
            order.swapAt(i, Int(rng.next() % UInt64(i + 1)))
        }
        let nEval = min(examples.count - 1, max(1, Int((Double(examples.count) * evalFraction).rounded())))
        let evalSet = Set(order.prefix(nEval))
        return (
            examples.indices.filter { !evalSet.contains($0) }.map { examples[$0] },
            order.prefix(nEval).sorted().map { examples[$0] }
        )
    }
}
