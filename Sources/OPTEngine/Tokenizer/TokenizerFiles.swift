// TokenizerFiles: reads the slow-tokenizer files of a GPT-2-style checkpoint — vocab.json (token →
// id), merges.txt (one "left right" pair per line, rank = line order) — and the special-token
// settings of tokenizer_config.json / special_tokens_map.json, into a TokenizerSpec. Every error
// names the file (and line) at fault.
import Foundation

enum TokenizerFiles {
    static func readData(_ path: String) throws -> Data {
        try FileAccess.readFile(path)
    }

    /// The first line of an error's description, for wrapping into our own message.
    static func brief(_ error: Error) -> String {
        let text = String(describing: error)
        return String(text.prefix(200))
    }

    /// vocab.json: a JSON object of token → non-negative integer id.
    static func readVocab(path: String) throws -> [String: Int] {
        let data = try readData(path)
        let vocab: [String: Int]
        do {
            vocab = try JSONDecoder().decode([String: Int].self, from: data)
        } catch {
            throw EngineError.tokenizer("\(path): not a JSON object of token → integer id (\(brief(error)))")
        }
        if let (token, id) = vocab.first(where: { $0.value < 0 }) {
            throw EngineError.tokenizer("\(path): token \"\(token)\" has negative id \(id)")
        }
        return vocab
    }

    /// merges.txt: "#version…" header lines and empty lines are skipped; every other line must be two
    /// tokens separated by one space.
    static func readMerges(path: String) throws -> [(String, String)] {
        let data = try readData(path)
        var merges: [(String, String)] = []
        merges.reserveCapacity(50_000)
        var lineNumber = 0
        for var line in data.split(separator: 0x0A, omittingEmptySubsequences: false) {
            lineNumber += 1
            if line.last == 0x0D { line = line.dropLast() }
            if line.isEmpty { continue }
            guard let text = String(validating: line, as: UTF8.self) else {
                throw EngineError.tokenizer("\(path) line \(lineNumber): not valid UTF-8")
            }
            if text.hasPrefix("#version") { continue }
            guard let pair = splitMerge(text) else {
                throw EngineError.tokenizer(
                    "\(path) line \(lineNumber): expected two tokens separated by one space, found \"\(text.prefix(80))\""
                )
            }
            merges.append(pair)
        }
        return merges
    }

    /// "Ġ t" → ("Ġ", "t"); nil unless exactly two non-empty parts around a single U+0020.
    static func splitMerge(_ line: String) -> (String, String)? {
        let scalars = line.unicodeScalars
        guard let space = scalars.firstIndex(of: " ") else { return nil }
        let left = scalars[..<space]
        let right = scalars[scalars.index(after: space)...]
        guard !left.isEmpty, !right.isEmpty, !right.contains(" ") else { return nil }
        return (String(left), String(right))
    }

    // MARK: - special-token settings

    private static func readJSONObject(_ path: String) throws -> JSONValue? {
        guard FileManager.default.fileExists(atPath: path) else { return nil }
        let data = try readData(path)
        let value: JSONValue
        do {
            value = try JSONDecoder().decode(JSONValue.self, from: data)
        } catch {
            throw EngineError.tokenizer("\(path): not valid JSON (\(brief(error)))")
        }
        guard case .object = value else { throw EngineError.tokenizer("\(path): not a JSON object") }
        return value
    }

    /// Applies tokenizer_config.json then special_tokens_map.json (which wins, as in transformers) to
    /// `spec`. Returns false when neither file exists.
    @discardableResult
    static func applyConfigs(directory: String, to spec: inout TokenizerSpec) throws -> Bool {
        let configPath = (directory as NSString).appendingPathComponent("tokenizer_config.json")
        let mapPath = (directory as NSString).appendingPathComponent("special_tokens_map.json")
        let config = try readJSONObject(configPath)
        let map = try readJSONObject(mapPath)
        guard config != nil || map != nil else { return false }

        var additional: [String] = []
        for (file, path) in [(config, configPath), (map, mapPath)] {
            guard let file else { continue }
            if let value = file["bos_token"]?.tokenContent { spec.bosToken = value }
            if let value = file["eos_token"]?.tokenContent { spec.eosToken = value }
            if let value = file["unk_token"]?.tokenContent { spec.unkToken = value }
            if let value = file["pad_token"]?.tokenContent { spec.padToken = value }
            if let list = file["additional_special_tokens"]?.array {
                additional = list.compactMap { $0.tokenContent }
            }
            if let value = file["add_bos_token"]?.bool { spec.addBOS = value }
            if let value = file["add_prefix_space"]?.bool { spec.addPrefixSpace = value }
            if case .object(let decoder)? = file["added_tokens_decoder"] {
                for (key, entry) in decoder.sorted(by: { (Int($0.key) ?? 0) < (Int($1.key) ?? 0) }) {
                    guard let id = Int(key), id >= 0, let content = entry["content"]?.string, !content.isEmpty else {
                        throw EngineError.tokenizer("\(path): added_tokens_decoder entry \"\(key)\" is malformed")
                    }
                    spec.addedTokens.append(.init(content: content, id: id, special: entry["special"]?.bool ?? false))
                }
            }
        }
        // transformers adds the named special tokens (and additional ones) as special added tokens.
        for content in [spec.bosToken, spec.eosToken, spec.unkToken, spec.padToken] + additional {
            spec.addedTokens.append(.init(content: content, id: nil, special: true))
        }
        return true
    }
}
