// TokenizerJSON: reads a `tokenizers` tokenizer.json holding a byte-level BPE model (what
// `PreTrainedTokenizerFast.save_pretrained` writes) into a TokenizerSpec. Only what a GPT-2-style
// pipeline uses is read: model.vocab, model.merges (either "a b" strings or ["a", "b"] pairs),
// model.ignore_merges, added_tokens, the ByteLevel pre-tokenizer's add_prefix_space, and the BOS of a
// TemplateProcessing post-processor. A model of another type (WordPiece, Unigram) is refused.
import Foundation

/// Everything BPETokenizer needs, whichever files it came from.
struct TokenizerSpec {
    struct AddedToken {
        var content: String
        var id: Int?
        var special: Bool
    }

    var vocab: [String: Int]
    var merges: [(String, String)]
    var addedTokens: [AddedToken] = []
    var bosToken = "</s>"
    var eosToken = "</s>"
    var padToken = "<pad>"
    var unkToken = "</s>"
    var addBOS = true
    var addPrefixSpace = false
    var ignoreMerges = false
    /// Names the file in error messages: the vocabulary's, and the merges' (the same for tokenizer.json).
    var source: String
    var mergesSource: String

    init(vocab: [String: Int], merges: [(String, String)], source: String, mergesSource: String? = nil) {
        self.vocab = vocab
        self.merges = merges
        self.source = source
        self.mergesSource = mergesSource ?? source
    }
}

/// Any JSON value; used for the loosely-shaped parts of the tokenizer files.
indirect enum JSONValue: Decodable {
    case null
    case bool(Bool)
    case number(Double)
    case string(String)
    case array([JSONValue])
    case object([String: JSONValue])

    init(from decoder: Decoder) throws {
        let container = try decoder.singleValueContainer()
        if container.decodeNil() {
            self = .null
        } else if let value = try? container.decode(Bool.self) {
            self = .bool(value)
        } else if let value = try? container.decode(Double.self) {
            self = .number(value)
        } else if let value = try? container.decode(String.self) {
            self = .string(value)
        } else if let value = try? container.decode([JSONValue].self) {
            self = .array(value)
        } else {
            self = .object(try container.decode([String: JSONValue].self))
        }
    }

    subscript(key: String) -> JSONValue? {
        if case .object(let object) = self { return object[key] }
        return nil
    }

    var string: String? {
        if case .string(let value) = self { return value }
        return nil
    }

    var bool: Bool? {
        if case .bool(let value) = self { return value }
        return nil
    }

    var int: Int? {
        if case .number(let value) = self, let int = Int(exactly: value) { return int }
        return nil
    }

    var array: [JSONValue]? {
        if case .array(let value) = self { return value }
        return nil
    }

    /// A special-token entry as transformers writes it: "</s>" or {"content": "</s>", …}.
    var tokenContent: String? {
        string ?? self["content"]?.string
    }
}

enum TokenizerJSON {
    private struct File: Decodable {
        struct Model: Decodable {
            let type: String?
            let vocab: [String: Int]
            let merges: [JSONValue]
            let ignore_merges: Bool?
        }

        let model: Model
        let added_tokens: [JSONValue]?
        let pre_tokenizer: JSONValue?
        let post_processor: JSONValue?
    }

    static func read(path: String) throws -> TokenizerSpec {
        let data = try TokenizerFiles.readData(path)
        let file: File
        do {
            file = try JSONDecoder().decode(File.self, from: data)
        } catch {
            throw EngineError.tokenizer(
                "\(path): not a tokenizer.json with a BPE model (\(TokenizerFiles.brief(error)))")
        }
        if let type = file.model.type, type != "BPE" {
            throw EngineError.tokenizer("\(path): model type \(type) is not supported (only BPE)")
        }
        var spec = TokenizerSpec(vocab: file.model.vocab, merges: [], source: path)
        spec.ignoreMerges = file.model.ignore_merges ?? false
        spec.merges.reserveCapacity(file.model.merges.count)
        for (index, entry) in file.model.merges.enumerated() {
            if let line = entry.string, let pair = TokenizerFiles.splitMerge(line) {
                spec.merges.append(pair)
            } else if let parts = entry.array, parts.count == 2, let a = parts[0].string, let b = parts[1].string,
                !a.isEmpty, !b.isEmpty
            {
                spec.merges.append((a, b))
            } else {
                throw EngineError.tokenizer("\(path): model.merges[\(index)] is not a pair of tokens")
            }
        }
        for (index, entry) in (file.added_tokens ?? []).enumerated() {
            guard let content = entry["content"]?.string, !content.isEmpty, let id = entry["id"]?.int, id >= 0 else {
                throw EngineError.tokenizer("\(path): added_tokens[\(index)] lacks a content or an id")
            }
            spec.addedTokens.append(.init(content: content, id: id, special: entry["special"]?.bool ?? false))
        }
        spec.addPrefixSpace = byteLevelAddsPrefixSpace(file.pre_tokenizer)
        if let post = file.post_processor {  // null decodes as nil
            applyPostProcessor(post, to: &spec)
        } else {
            spec.addBOS = false
        }
        return spec
    }

    /// add_prefix_space of the ByteLevel pre-tokenizer, alone or inside a Sequence.
    private static func byteLevelAddsPrefixSpace(_ value: JSONValue?) -> Bool {
        guard let value else { return false }
        if value["type"]?.string == "ByteLevel" { return value["add_prefix_space"]?.bool ?? false }
        for inner in value["pretokenizers"]?.array ?? [] where byteLevelAddsPrefixSpace(inner) {
            return true
        }
        return false
    }

    /// A TemplateProcessing whose single template starts with a special token adds that token as BOS
    /// (this is how transformers' converter writes OPT's `add_bos_token`); a plain ByteLevel
    /// post-processor adds nothing.
    private static func applyPostProcessor(_ value: JSONValue, to spec: inout TokenizerSpec) {
        switch value["type"]?.string {
        case "TemplateProcessing":
            if let first = value["single"]?.array?.first, let bos = first["SpecialToken"]?["id"]?.string {
                spec.addBOS = true
                spec.bosToken = bos
            } else {
                spec.addBOS = false
            }
        case "Sequence":
            spec.addBOS = false
            for inner in value["processors"]?.array ?? [] where inner["type"]?.string == "TemplateProcessing" {
                applyPostProcessor(inner, to: &spec)
            }
        default:
            spec.addBOS = false
        }
    }
}
