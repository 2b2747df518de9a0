// BPETokenizer: GPT-2 byte-level BPE as OPT uses it, equal to transformers' GPT2TokenizerFast.
//
// encode: added (special) tokens found literally in the text are split out first (leftmost, longest
// on a tie) and map to their ids; each stretch between them is split by the PreTokenizer, each word's
// UTF-8 bytes become byte-level symbols, and BPEMerges merges them (cached per word). OPT prepends
// its BOS "</s>" (id 2) and appends nothing.
// decode: ids → the bytes their tokens stand for → UTF-8, invalid sequences as U+FFFD (Python's
// errors="replace"); optional skipping of special tokens and transformers' clean-up of spaces.
import Foundation

public final class BPETokenizer: @unchecked Sendable {
    public let bosTokenId: Int
    public let eosTokenId: Int
    public let padTokenId: Int
    public let unkTokenId: Int
    /// Whether `encode` prepends the BOS by default.
    public let addBOS: Bool

    /// id → token string (nil for ids no token has).
    private let idToToken: [String?]
    /// id → the bytes the token stands for.
    private let idToBytes: [[UInt8]]
    private let specialIds: Set<Int>
    /// byte → id of its one-symbol token (-1 when the vocabulary lacks it).
    private let byteIds: [Int32]
    private let merges: BPEMerges
    private let vocab: [String: Int]
    private let ignoreMerges: Bool
    private let addPrefixSpace: Bool
    /// Added tokens as UTF-8, and for each first byte the indices of those starting with it, longest first.
    private let addedBytes: [(bytes: [UInt8], id: Int)]
    private let addedByFirstByte: [[Int]]
    private let cache = BPEWordCache()
    /// Ids are array indices; a file claiming larger ones is refused rather than allocated for.
    private static let maxVocabularySize = 1 << 24

    /// One past the largest id (50,265 for OPT: the vocabulary plus any added tokens).
    public var vocabularySize: Int { idToToken.count }

    // MARK: - loading

    /// Reads vocab.json + merges.txt from `directory`; when those are absent, tokenizer.json. Special
    /// tokens from special_tokens_map.json / tokenizer_config.json when present, else OPT's defaults:
    /// bos = eos = unk = "</s>", pad = "<pad>".
    public static func load(directory: String) throws -> BPETokenizer {
        func path(_ name: String) -> String { (directory as NSString).appendingPathComponent(name) }
        try FileAccess.requireDirectory(directory)
        let fm = FileManager.default
        let vocabPath = path("vocab.json"), mergesPath = path("merges.txt"), jsonPath = path("tokenizer.json")
        var spec: TokenizerSpec
        if fm.fileExists(atPath: vocabPath), fm.fileExists(atPath: mergesPath) {
            spec = TokenizerSpec(
                vocab: try TokenizerFiles.readVocab(path: vocabPath),
                merges: try TokenizerFiles.readMerges(path: mergesPath),
                source: vocabPath, mergesSource: mergesPath)
        } else if fm.fileExists(atPath: jsonPath) {
            spec = try TokenizerJSON.read(path: jsonPath)
        } else {
            throw EngineError.missingFile(path: fm.fileExists(atPath: vocabPath) ? mergesPath : vocabPath)
        }
        let hadAddedTokens = !spec.addedTokens.isEmpty
        let hadConfig = try TokenizerFiles.applyConfigs(directory: directory, to: &spec)
        if !hadConfig, !hadAddedTokens {
            // OPT's own special tokens; "<s>" and "<unk>" are ordinary vocabulary entries for OPT.
            for content in [spec.bosToken, spec.eosToken, spec.unkToken, spec.padToken] {
                spec.addedTokens.append(.init(content: content, id: nil, special: true))
            }
        }
        return try BPETokenizer(spec: spec)
    }

    public convenience init(
        vocab: [String: Int], merges: [(String, String)], specialTokens: [String] = ["<s>", "<pad>", "</s>", "<unk>"],
        bosToken: String = "</s>", eosToken: String = "</s>", padToken: String = "<pad>", unkToken: String = "</s>",
        addBOS: Bool = true
    ) throws {
        var spec = TokenizerSpec(vocab: vocab, merges: merges, source: "tokenizer")
        spec.addedTokens = (specialTokens + [bosToken, eosToken, padToken, unkToken]).map {
            .init(content: $0, id: nil, special: true)
        }
        spec.bosToken = bosToken
        spec.eosToken = eosToken
        spec.padToken = padToken
        spec.unkToken = unkToken
        spec.addBOS = addBOS
        try self.init(spec: spec)
    }

    init(spec: TokenizerSpec) throws {
        var vocab = spec.vocab
        if let (token, id) = vocab.first(where: { $0.value < 0 || $0.value >= Self.maxVocabularySize }) {
            throw EngineError.tokenizer("\(spec.source): token \"\(token)\" has id \(id), out of range")
        }
        merges = try BPEMerges(merges: spec.merges, vocab: vocab, source: spec.mergesSource)

        // Added tokens: with an id they take it; without, they reuse their vocabulary id or get the next
        // free one (as transformers' add_tokens does).
        var nextId = (vocab.values.max() ?? -1) + 1
        var added: [(bytes: [UInt8], id: Int)] = []
        var specials = Set<Int>()
        var seen = Set<[UInt8]>()
        for token in spec.addedTokens where !token.content.isEmpty {
            let id: Int
            if let explicit = token.id {
                guard explicit < Self.maxVocabularySize else {
                    throw EngineError.tokenizer(
                        "\(spec.source): added token \"\(token.content)\" has id \(explicit), out of range")
                }
                id = explicit
            } else if let existing = vocab[token.content] {
                id = existing
            } else {
                id = nextId
            }
            if let previous = vocab[token.content], previous != id {
                throw EngineError.tokenizer(
                    "\(spec.source): added token \"\(token.content)\" has id \(id) but the vocabulary gives it \(previous)"
                )
            }
            vocab[token.content] = id
            nextId = max(nextId, id + 1)
            if token.special { specials.insert(id) }
            if seen.insert(Array(token.content.utf8)).inserted { added.append((Array(token.content.utf8), id)) }
        }
        func id(of token: String, _ role: String) throws -> Int {
            guard let id = vocab[token] else {
                throw EngineError.tokenizer("\(spec.source): \(role) token \"\(token)\" is not in the vocabulary")
            }
            return id
        }
        bosTokenId = try id(of: spec.bosToken, "bos")
        eosTokenId = try id(of: spec.eosToken, "eos")
        padTokenId = try id(of: spec.padToken, "pad")
        unkTokenId = try id(of: spec.unkToken, "unk")

        guard nextId <= Self.maxVocabularySize else {
            throw EngineError.tokenizer("\(spec.source): ids reach \(nextId - 1), more than a vocabulary can hold")
        }
        var idToToken = [String?](repeating: nil, count: nextId)
        var idToBytes = [[UInt8]](repeating: [], count: nextId)
        for (token, id) in vocab {
            idToToken[id] = token
            idToBytes[id] = ByteEncoder.decode(token)
        }
        self.idToToken = idToToken
        self.idToBytes = idToBytes
        self.byteIds = ByteEncoder.byteToScalar.map { scalar in
            vocab[String(Character(scalar))].map { Int32($0) } ?? -1
        }
        added.sort { $0.bytes.count > $1.bytes.count }
        var byFirst = [[Int]](repeating: [], count: 256)
        for (index, token) in added.enumerated() { byFirst[Int(token.bytes[0])].append(index) }
        self.addedBytes = added
        self.addedByFirstByte = byFirst
        self.specialIds = specials
        self.vocab = vocab
        self.addBOS = spec.addBOS
        self.ignoreMerges = spec.ignoreMerges
        self.addPrefixSpace = spec.addPrefixSpace
    }

    // MARK: - encode

    /// Token ids of `text`; the BOS first when `addBOS` (default: the tokenizer's own setting).
    public func encode(_ text: String, addBOS: Bool? = nil) -> [Int] {
        var ids: [Int] = []
        ids.reserveCapacity(text.utf8.count / 3 + 2)
        if addBOS ?? self.addBOS { ids.append(bosTokenId) }
        var text = text
        text.withUTF8 { buffer in
            var segmentStart = 0
            var i = 0
            while i < buffer.count {
                if let (length, id) = addedToken(in: buffer, at: i) {
                    encodeSegment(UnsafeBufferPointer(rebasing: buffer[segmentStart..<i]), into: &ids)
                    ids.append(id)
                    i += length
                    segmentStart = i
                } else {
                    i += 1
                }
            }
            encodeSegment(UnsafeBufferPointer(rebasing: buffer[segmentStart..<buffer.count]), into: &ids)
        }
        return ids
    }

    /// The longest added token starting at byte `i`, as (byte length, id).
    @inline(__always)
    private func addedToken(in buffer: UnsafeBufferPointer<UInt8>, at i: Int) -> (Int, Int)? {
        let candidates = addedByFirstByte[Int(buffer[i])]
        if candidates.isEmpty { return nil }
        for index in candidates {
            let token = addedBytes[index].bytes
            guard i + token.count <= buffer.count else { continue }
            var k = 1
            while k < token.count, buffer[i + k] == token[k] { k += 1 }
            if k == token.count { return (token.count, addedBytes[index].id) }
        }
        return nil
    }

    private func encodeSegment(_ segment: UnsafeBufferPointer<UInt8>, into ids: inout [Int]) {
        guard !segment.isEmpty else { return }
        if addPrefixSpace, segment[0] != 0x20 {
            let prefixed = [0x20] + Array(segment)
            prefixed.withUnsafeBufferPointer { encodeWords($0, into: &ids) }
        } else {
            encodeWords(segment, into: &ids)
        }
    }

    private func encodeWords(_ segment: UnsafeBufferPointer<UInt8>, into ids: inout [Int]) {
        var symbols: [Int32] = []
        PreTokenizer.split(segment) { start, end in
            let word = UnsafeBufferPointer(rebasing: segment[start..<end])
            if end - start == 1 {
                let id = byteIds[Int(word[0])]
                if id >= 0 { ids.append(Int(id)) }
                return
            }
            let key = Array(word)
            if let cached = cache.get(key) {
                ids.append(contentsOf: cached)
                return
            }
            if ignoreMerges, let id = vocab[ByteEncoder.encode(word)] {
                cache.set(key, [id])
                ids.append(id)
                return
            }
            symbols.removeAll(keepingCapacity: true)
            for byte in word where byteIds[Int(byte)] >= 0 { symbols.append(byteIds[Int(byte)]) }
            merges.apply(&symbols)
            let result = symbols.map { Int($0) }
            cache.set(key, result)
            ids.append(contentsOf: result)
        }
    }

    // MARK: - decode

    public func decode(_ ids: [Int], skipSpecialTokens: Bool = false, cleanUpTokenizationSpaces: Bool = false) -> String
    {
        var bytes: [UInt8] = []
        bytes.reserveCapacity(ids.count * 4)
        for id in ids { appendBytes(of: id, skipSpecialTokens: skipSpecialTokens, to: &bytes) }
        if cleanUpTokenizationSpaces {
            // Decode first (so U+FFFD replacements are in place), then clean up on UTF-8: the patterns are
            // ASCII, which never occurs inside a multi-byte sequence.
            bytes = Array(String(decoding: bytes, as: UTF8.self).utf8)
            bytes = Self.cleanUpTokenizationSpaces(bytes)
        }
        return String(decoding: bytes, as: UTF8.self)
    }

    /// Appends the bytes token `id` stands for; ids without a token are skipped (as `tokenizers` does).
    func appendBytes(of id: Int, skipSpecialTokens: Bool, to bytes: inout [UInt8]) {
        guard id >= 0, id < idToBytes.count, idToToken[id] != nil else { return }
        if skipSpecialTokens, specialIds.contains(id) { return }
        bytes.append(contentsOf: idToBytes[id])
    }

    /// transformers' `clean_up_tokenization`, the same replacements in the same order.
    static func cleanUpTokenizationSpaces(_ bytes: [UInt8]) -> [UInt8] {
        let rules: [(String, String)] = [
            (" .", "."), (" ?", "?"), (" !", "!"), (" ,", ","), (" ' ", "'"),
            (" n't", "n't"), (" 'm", "'m"), (" 's", "'s"), (" 've", "'ve"), (" 're", "'re"),
        ]
        var current = bytes
        for (pattern, replacement) in rules {
            current = replaceAll(current, Array(pattern.utf8), Array(replacement.utf8))
        }
        return current
    }

    /// Python's str.replace: non-overlapping occurrences, left to right.
    private static func replaceAll(_ bytes: [UInt8], _ pattern: [UInt8], _ replacement: [UInt8]) -> [UInt8] {
        guard bytes.count >= pattern.count, let first = pattern.first else { return bytes }
        var out: [UInt8] = []
        out.reserveCapacity(bytes.count)
        var i = 0
        while i < bytes.count {
            if bytes[i] == first, i + pattern.count <= bytes.count,
                bytes[i..<(i + pattern.count)].elementsEqual(pattern)
            {
                out.append(contentsOf: replacement)
                i += pattern.count
            } else {
                out.append(bytes[i])
                i += 1
            }
        }
        return out
    }

    // MARK: - lookups

    /// The vocabulary entry of `id` in the byte-level alphabet, e.g. "Ġthe"; nil when no token has it.
    public func tokenString(_ id: Int) -> String? {
        guard id >= 0, id < idToToken.count else { return nil }
        return idToToken[id]
    }

    /// The id of a vocabulary entry (byte-level alphabet, e.g. "Ġthe").
    func tokenId(_ token: String) -> Int? { vocab[token] }

    /// Whether `id` is a special token (dropped by `skipSpecialTokens`).
    public func isSpecial(_ id: Int) -> Bool { specialIds.contains(id) }
}
