import Foundation
import XCTest

@testable import OPTEngine

/// Golden tests against transformers' GPT2TokenizerFast (fixtures in Tests/Fixtures/tokenizer*,
/// written by Python), plus hand-picked pre-tokenizer splits and error cases.
final class TokenizerTests: XCTestCase {
    struct Case: Decodable {
        let text: String
        let ids: [Int]
        let decoded: String
        let decoded_cleanup: String
        let decoded_with_special: String
    }

    struct DecodeCase: Decodable {
        let name: String
        let ids: [Int]
        let decoded: String
        let decoded_skip_special: String
        let decoded_cleanup: String
        let tokens: [String]
    }

    static let fixtures = URL(fileURLWithPath: #filePath)
        .deletingLastPathComponent().deletingLastPathComponent().appendingPathComponent("Fixtures")
    static let slowDirectory = fixtures.appendingPathComponent("tokenizer").path
    static let jsonDirectory = fixtures.appendingPathComponent("tokenizer-json").path

    /// Loaded once for the whole class (vocab.json + merges.txt).
    static let shared: Result<BPETokenizer, Error> = Result { try BPETokenizer.load(directory: slowDirectory) }

    func tokenizer() throws -> BPETokenizer { try Self.shared.get() }

    func cases() throws -> [Case] {
        let data = try Data(contentsOf: Self.fixtures.appendingPathComponent("tokenizer/cases.json"))
        return try JSONDecoder().decode([Case].self, from: data)
    }

    func decodeCases() throws -> [DecodeCase] {
        let data = try Data(contentsOf: Self.fixtures.appendingPathComponent("tokenizer/decode_cases.json"))
        return try JSONDecoder().decode([DecodeCase].self, from: data)
    }

    // MARK: - pre-tokenizer

    func testPreTokenizerHandPickedSplits() {
        let expected: [(String, [String])] = [
            ("Hello world", ["Hello", " world"]),
            ("Hello, world!", ["Hello", ",", " world", "!"]),
            ("it's", ["it", "'s"]),
            ("they're we'll I've", ["they", "'re", " we", "'ll", " I", "'ve"]),
            ("IT'S", ["IT", "'", "S"]),
            ("''s", ["''", "s"]),
            ("'sup", ["'s", "up"]),
            ("!'s", ["!'", "s"]),
            (" 's", [" '", "s"]),
            ("a  b", ["a", " ", " b"]),
            ("a   b", ["a", "  ", " b"]),
            ("trailing   ", ["trailing", "   "]),
            ("\n\nx", ["\n", "\n", "x"]),
            ("a\n\n\nb", ["a", "\n\n", "\n", "b"]),
            (" \n x", [" \n", " x"]),
            ("x \n", ["x", " \n"]),
            ("abc123def", ["abc", "123", "def"]),
            (" 42 ", [" 42", " "]),
            ("3.14", ["3", ".", "14"]),
            ("...!?", ["...!?"]),
            (" ...", [" ..."]),
            ("  ...", [" ", " ..."]),
            ("café", ["café"]),
            ("Привет, мир!", ["Привет", ",", " мир", "!"]),
            ("日本語のテキスト", ["日本語のテキスト"]),
            ("x² ⅓", ["x", "²", " ⅓"]),
            ("a\u{00A0}b", ["a", "\u{00A0}", "b"]),
            ("a\u{00A0}\u{00A0}b", ["a", "\u{00A0}", "\u{00A0}", "b"]),
            ("a\u{200B}b", ["a", "\u{200B}", "b"]),
            ("Hello 😀 world", ["Hello", " 😀", " world"]),
            ("e\u{0301}", ["e", "\u{0301}"]),
            ("", []),
        ]
        for (text, words) in expected {
            XCTAssertEqual(PreTokenizer.split(text), words, "split of \(text.debugDescription)")
        }
    }

    func testByteEncoderTable() {
        XCTAssertEqual(ByteEncoder.byteToScalar[0x20], "\u{0120}")
        XCTAssertEqual(ByteEncoder.byteToScalar[0x0A], "\u{010A}")
        XCTAssertEqual(ByteEncoder.byteToScalar[0x21], "!")
        XCTAssertEqual(Set(ByteEncoder.byteToScalar).count, 256)
        for byte in 0..<256 {
            XCTAssertEqual(ByteEncoder.byte(for: ByteEncoder.byteToScalar[byte]), UInt8(byte))
        }
        XCTAssertEqual(ByteEncoder.decode("ĠHello"), Array(" Hello".utf8))
    }

    // MARK: - golden encode / decode

    func testEncodeMatchesTransformersOnEveryCase() throws {
        let tokenizer = try tokenizer()
        let cases = try cases()
        XCTAssertGreaterThan(cases.count, 100)
        var failures = 0
        for c in cases {
            let ids = tokenizer.encode(c.text)
            if ids != c.ids {
                failures += 1
                XCTFail("encode(\(c.text.debugDescription)) = \(ids), transformers: \(c.ids)")
            }
            XCTAssertEqual(tokenizer.encode(c.text, addBOS: false), Array(c.ids.dropFirst()))
        }
        XCTAssertEqual(failures, 0)
    }

    func testDecodeRoundTripsAndMatchesTransformers() throws {
        let tokenizer = try tokenizer()
        for c in try cases() {
            let ids = Array(c.ids.dropFirst())
            XCTAssertEqual(c.ids.first, 2)
            XCTAssertEqual(tokenizer.decode(tokenizer.encode(c.text, addBOS: false)), c.text)
            XCTAssertEqual(tokenizer.decode(ids), c.decoded, "decode of \(c.text.debugDescription)")
            XCTAssertEqual(
                tokenizer.decode(ids, cleanUpTokenizationSpaces: true), c.decoded_cleanup,
                "cleanup decode of \(c.text.debugDescription)")
            XCTAssertEqual(
                tokenizer.decode(c.ids), c.decoded_with_special, "decode with specials of \(c.text.debugDescription)")
            XCTAssertEqual(tokenizer.decode(c.ids, skipSpecialTokens: true), c.text.replacingSpecials())
        }
    }

    func testDecodeCases() throws {
        let tokenizer = try tokenizer()
        for c in try decodeCases() {
            XCTAssertEqual(c.ids.map { tokenizer.tokenString($0) ?? "?" }, c.tokens, c.name)
            XCTAssertEqual(tokenizer.decode(c.ids), c.decoded, c.name)
            XCTAssertEqual(tokenizer.decode(c.ids, skipSpecialTokens: true), c.decoded_skip_special, c.name)
            XCTAssertEqual(tokenizer.decode(c.ids, cleanUpTokenizationSpaces: true), c.decoded_cleanup, c.name)
        }
    }

    func testSpecialTokensAndLookups() throws {
        let tokenizer = try tokenizer()
        XCTAssertEqual(tokenizer.bosTokenId, 2)
        XCTAssertEqual(tokenizer.eosTokenId, 2)
        XCTAssertEqual(tokenizer.padTokenId, 1)
        XCTAssertEqual(tokenizer.unkTokenId, 2)
        XCTAssertTrue(tokenizer.addBOS)
        XCTAssertEqual(tokenizer.vocabularySize, 50261)
        XCTAssertEqual(tokenizer.tokenString(2), "</s>")
        XCTAssertEqual(tokenizer.tokenString(999), "Ġworld")
        XCTAssertNil(tokenizer.tokenString(-1))
        XCTAssertNil(tokenizer.tokenString(tokenizer.vocabularySize))
        XCTAssertTrue(tokenizer.isSpecial(1))
        XCTAssertTrue(tokenizer.isSpecial(2))
        XCTAssertFalse(tokenizer.isSpecial(0))  // "<s>" is an ordinary entry for OPT
        XCTAssertFalse(tokenizer.isSpecial(3))
        XCTAssertEqual(tokenizer.encode(""), [2])
        XCTAssertEqual(tokenizer.encode("", addBOS: false), [])
        // Unknown ids are skipped, as `tokenizers` does.
        XCTAssertEqual(tokenizer.decode([15500, -5, 1_000_000, 999]), "Hello world")
    }

    func testTokenizerJSONGivesTheSameIds() throws {
        let fromJSON = try BPETokenizer.load(directory: Self.jsonDirectory)
        let tokenizer = try tokenizer()
        XCTAssertEqual(fromJSON.bosTokenId, 2)
        XCTAssertEqual(fromJSON.padTokenId, 1)
        XCTAssertEqual(fromJSON.vocabularySize, tokenizer.vocabularySize)
        for c in try cases() {
            XCTAssertEqual(fromJSON.encode(c.text), c.ids, "tokenizer.json encode of \(c.text.debugDescription)")
            XCTAssertEqual(fromJSON.decode(c.ids), c.decoded_with_special)
        }
        for id in [0, 1, 2, 3] { XCTAssertEqual(fromJSON.isSpecial(id), tokenizer.isSpecial(id)) }
    }

    func testConcurrentEncodesAgree() throws {
        let tokenizer = try BPETokenizer.load(directory: Self.slowDirectory)  // a fresh, empty word cache
        let cases = try cases()
        let mismatches = NSLock()
        var bad: [String] = []
        DispatchQueue.concurrentPerform(iterations: 8) { worker in
            for c in cases.shuffled() where tokenizer.encode(c.text) != c.ids {
                mismatches.lock()
                bad.append("worker \(worker): \(c.text.debugDescription)")
                mismatches.unlock()
            }
        }
        XCTAssertEqual(bad, [])
    }

    // MARK: - streaming

    func testStreamingDecodeConcatenatesToTheFullDecode() throws {
        let tokenizer = try tokenizer()
        var multiByteCases = 0
        for c in try cases() {
            for skip in [false, true] {
                let full = tokenizer.decode(c.ids, skipSpecialTokens: skip)
                var stream = StreamingDecoder(tokenizer: tokenizer, skipSpecialTokens: skip)
                var chunks: [String] = []
                for id in c.ids { chunks.append(stream.append(id)) }
                chunks.append(stream.finish())
                XCTAssertEqual(chunks.joined(), full, "stream of \(c.text.debugDescription)")
                // The cases are valid text: a chunk may never show a replacement for a partial character.
                if !full.unicodeScalars.contains("\u{FFFD}") {
                    for chunk in chunks {
                        XCTAssertFalse(
                            chunk.unicodeScalars.contains("\u{FFFD}"), "partial UTF-8 in \(c.text.debugDescription)")
                    }
                }
                XCTAssertEqual(chunks.last, "", "nothing left over for \(c.text.debugDescription)")
            }
            if c.text.utf8.contains(where: { $0 >= 0xF0 }) { multiByteCases += 1 }
        }
        XCTAssertGreaterThan(multiByteCases, 10)
    }

    func testStreamingHoldsBackAnEmojiUntilItsLastByte() throws {
        let tokenizer = try tokenizer()
        // "😀" = F0 9F 98 80: tokens "ðŁĺ" (3 bytes) and "Ģ" (the last byte).
        var stream = StreamingDecoder(tokenizer: tokenizer)
        XCTAssertEqual(stream.append(15500), "Hello")
        XCTAssertEqual(stream.append(47253), "")
        XCTAssertEqual(stream.append(226), "😀")
        XCTAssertEqual(stream.finish(), "")
        // A partial emoji at the end flushes as one U+FFFD, as the whole decode shows it.
        var partial = StreamingDecoder(tokenizer: tokenizer)
        XCTAssertEqual(partial.append(47253), "")
        XCTAssertEqual(partial.finish(), "\u{FFFD}")
        // A stray continuation byte can never complete: it is released at once.
        var stray = StreamingDecoder(tokenizer: tokenizer)
        XCTAssertEqual(stray.append(226), "\u{FFFD}")
        for c in try decodeCases() {
            var s = StreamingDecoder(tokenizer: tokenizer)
            let text = c.ids.map { s.append($0) }.joined() + s.finish()
            XCTAssertEqual(text, c.decoded, c.name)
        }
    }

    func testUnfinishedSuffixLength() {
        XCTAssertEqual(StreamingDecoder.unfinishedSuffixLength([]), 0)
        XCTAssertEqual(StreamingDecoder.unfinishedSuffixLength([0x41]), 0)
        XCTAssertEqual(StreamingDecoder.unfinishedSuffixLength([0x41, 0xF0]), 1)
        XCTAssertEqual(StreamingDecoder.unfinishedSuffixLength([0xF0, 0x9F]), 2)
        XCTAssertEqual(StreamingDecoder.unfinishedSuffixLength([0xF0, 0x9F, 0x98]), 3)
        XCTAssertEqual(StreamingDecoder.unfinishedSuffixLength([0xF0, 0x9F, 0x98, 0x80]), 0)
        XCTAssertEqual(StreamingDecoder.unfinishedSuffixLength([0xE0, 0x80]), 0)  // overlong: never valid
        XCTAssertEqual(StreamingDecoder.unfinishedSuffixLength([0xED, 0xA0]), 0)  // surrogate
        XCTAssertEqual(StreamingDecoder.unfinishedSuffixLength([0xF4, 0x90]), 0)  // above U+10FFFF
        XCTAssertEqual(StreamingDecoder.unfinishedSuffixLength([0xC0]), 0)
        XCTAssertEqual(StreamingDecoder.unfinishedSuffixLength([0x80, 0x80, 0x80]), 0)
    }

    // MARK: - in-memory construction

    func testInitFromVocabAndMerges() throws {
        var vocab: [String: Int] = ["<s>": 0, "<pad>": 1, "</s>": 2, "<unk>": 3]
        for (i, token) in ["a", "b", "Ġ", "ab", "Ġab", "c"].enumerated() { vocab[token] = 4 + i }
        let tokenizer = try BPETokenizer(vocab: vocab, merges: [("a", "b"), ("Ġ", "ab")])
        XCTAssertEqual(tokenizer.encode("ab abc"), [2, 7, 8, 9])
        XCTAssertEqual(tokenizer.encode("<s>ab</s>", addBOS: false), [0, 7, 2])  // the init's specials are split out
        XCTAssertEqual(tokenizer.decode([0, 7, 2], skipSpecialTokens: true), "ab")
        XCTAssertThrowsError(try BPETokenizer(vocab: vocab, merges: [("a", "c")])) { error in
            XCTAssertTrue("\(error)".contains("\"ac\""), "\(error)")
        }
        // A special token missing from the vocabulary is added after it, as transformers' add_tokens does.
        let withBOS = try BPETokenizer(vocab: vocab, merges: [], bosToken: "<bos>")
        XCTAssertEqual(withBOS.bosTokenId, 10)
        XCTAssertEqual(withBOS.vocabularySize, 11)
        XCTAssertEqual(withBOS.encode("x<bos>", addBOS: false), [10])  // "x" has no byte token here: dropped
    }

    func testCleanUpFollowsTransformersOrder() {
        func clean(_ s: String) -> String {
            String(decoding: BPETokenizer.cleanUpTokenizationSpaces(Array(s.utf8)), as: UTF8.self)
        }
        XCTAssertEqual(clean("a , b . c ' d"), "a, b. c'd")
        XCTAssertEqual(clean("do n't"), "don't")
        XCTAssertEqual(clean("x ."), "x.")
        XCTAssertEqual(clean(" .\u{0301}"), ".\u{0301}")  // bytes, not graphemes
    }

    // MARK: - errors

    func temporaryDirectory(files: [String: String]) throws -> String {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("tok-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        for (name, contents) in files {
            try contents.write(to: dir.appendingPathComponent(name), atomically: true, encoding: .utf8)
        }
        addTeardownBlock { try? FileManager.default.removeItem(at: dir) }
        return dir.path
    }

    func assertTokenizerError(
        _ files: [String: String], mentions needle: String, file: StaticString = #filePath, line: UInt = #line
    ) throws {
        let dir = try temporaryDirectory(files: files)
        XCTAssertThrowsError(try BPETokenizer.load(directory: dir), file: file, line: line) { error in
            guard let engineError = error as? EngineError else {
                return XCTFail("not an EngineError: \(error)", file: file, line: line)
            }
            XCTAssertTrue(
                engineError.description.contains(needle), "\(engineError) lacks \(needle)", file: file, line: line)
        }
    }

    func testMissingFilesAreNamed() throws {
        let dir = try temporaryDirectory(files: [:])
        XCTAssertThrowsError(try BPETokenizer.load(directory: dir)) { error in
            XCTAssertEqual(error as? EngineError, .missingFile(path: dir + "/vocab.json"))
        }
        let onlyVocab = try temporaryDirectory(files: ["vocab.json": #"{"a": 0}"#])
        XCTAssertThrowsError(try BPETokenizer.load(directory: onlyVocab)) { error in
            XCTAssertEqual(error as? EngineError, .missingFile(path: onlyVocab + "/merges.txt"))
        }
        XCTAssertThrowsError(try BPETokenizer.load(directory: "/nonexistent/muwa/tokenizer")) { error in
            XCTAssertEqual(error as? EngineError, .missingDirectory(path: "/nonexistent/muwa/tokenizer"))
        }
    }

    func testMalformedFilesAreNamed() throws {
        let vocab = #"{"</s>": 0, "<pad>": 1, "a": 2, "b": 3, "ab": 4}"#
        try assertTokenizerError(["vocab.json": "{not json", "merges.txt": "#version: 0.2\n"], mentions: "vocab.json")
        try assertTokenizerError(["vocab.json": #"{"a": "zero"}"#, "merges.txt": ""], mentions: "vocab.json")
        try assertTokenizerError(["vocab.json": #"["a", "b"]"#, "merges.txt": ""], mentions: "vocab.json")
        try assertTokenizerError(["vocab.json": #"{"a": -1}"#, "merges.txt": ""], mentions: "vocab.json")
        try assertTokenizerError(
            ["vocab.json": vocab, "merges.txt": "#version: 0.2\na b\nabc\n"], mentions: "merges.txt line 3")
        try assertTokenizerError(["vocab.json": vocab, "merges.txt": "a b c\n"], mentions: "merges.txt line 1")
        try assertTokenizerError(["vocab.json": vocab, "merges.txt": "a x\n"], mentions: "merges.txt")
        try assertTokenizerError(
            ["vocab.json": vocab, "merges.txt": "a b\n", "tokenizer_config.json": "{\"bos_token\": "],
            mentions: "tokenizer_config.json")
        try assertTokenizerError(["tokenizer.json": #"{"model": {"type": "BPE"}}"#], mentions: "tokenizer.json")
        try assertTokenizerError(
            ["tokenizer.json": #"{"model": {"type": "WordPiece", "vocab": {}, "merges": []}}"#], mentions: "WordPiece")
        try assertTokenizerError(
            ["tokenizer.json": #"{"model": {"type": "BPE", "vocab": {"a": 0}, "merges": [["a"]]}}"#],
            mentions: "tokenizer.json")
        // A well-formed minimal directory loads.
        let dir = try temporaryDirectory(files: ["vocab.json": vocab, "merges.txt": "#version: 0.2\r\na b\r\n"])
        let tokenizer = try BPETokenizer.load(directory: dir)
        XCTAssertEqual(tokenizer.encode("ab</s>"), [0, 4, 0])
        XCTAssertEqual(tokenizer.padTokenId, 1)
        XCTAssertTrue(tokenizer.isSpecial(0))
        XCTAssertEqual(tokenizer.vocabularySize, 5)  // OPT's defaults are all in this vocabulary
    }

    // MARK: - throughput

    func testEncodeThroughputOnAMegabyte() throws {
        let tokenizer = try tokenizer()
        let sample = try cases().map(\.text).joined(separator: "\n\n")
        var text = ""
        while text.utf8.count < 1_000_000 { text += sample }
        let start = Date()
        let ids = tokenizer.encode(text)
        let seconds = Date().timeIntervalSince(start)
        let mb = Double(text.utf8.count) / 1_000_000
        print(
            String(
                format: "tokenizer: encoded %.2f MB into %d tokens in %.3f s (%.2f MB/s)", mb, ids.count, seconds,
                mb / seconds))
        XCTAssertEqual(tokenizer.decode(Array(ids.dropFirst())), text)
    }
}

extension String {
    /// The text with OPT's special tokens removed, as skip_special_tokens shows it after a round trip.
    fileprivate func replacingSpecials() -> String {
        replacingOccurrences(of: "</s>", with: "").replacingOccurrences(of: "<pad>", with: "")
    }
}
