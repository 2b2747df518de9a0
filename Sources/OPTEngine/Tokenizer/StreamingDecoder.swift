// StreamingDecoder: decodes generated tokens one at a time. A byte-level token can end in the middle
// of a multi-byte character (an emoji is often two or three tokens), so the decoder keeps the bytes
// of an unfinished trailing sequence back until later tokens complete it; everything before it is
// returned at once. Bytes that can never become valid are returned as U+FFFD right away, exactly as
// the whole-sequence decode would show them, so the chunks always concatenate to
// `tokenizer.decode(allIds, skipSpecialTokens:)`.

public struct StreamingDecoder: Sendable {
    private let tokenizer: BPETokenizer
    private let skipSpecialTokens: Bool
    private var pending: [UInt8] = []

    public init(tokenizer: BPETokenizer, skipSpecialTokens: Bool = false) {
        self.tokenizer = tokenizer
        self.skipSpecialTokens = skipSpecialTokens
    }

    /// The text that token `id` completes ("" while a character is still unfinished).
    public mutating func append(_ id: Int) -> String {
        tokenizer.appendBytes(of: id, skipSpecialTokens: skipSpecialTokens, to: &pending)
        let keep = Self.unfinishedSuffixLength(pending)
        if keep == pending.count { return "" }
        let text = String(decoding: pending[..<(pending.count - keep)], as: UTF8.self)
        pending.removeFirst(pending.count - keep)
        return text
    }

    /// Everything still held back; an unfinished sequence comes out as U+FFFD.
    public mutating func finish() -> String {
        defer { pending.removeAll() }
        return String(decoding: pending, as: UTF8.self)
    }

    /// The length of the trailing bytes that are a proper prefix of some valid UTF-8 sequence (a lead
    /// byte and fewer continuation bytes than it needs, each allowed in its place), or 0.
    static func unfinishedSuffixLength(_ bytes: [UInt8]) -> Int {
        let n = bytes.count
        // The lead byte can be at most 3 bytes back: a 4-byte sequence with 3 bytes present.
        var start = n - 1
        while start >= 0, start >= n - 3, bytes[start] & 0xC0 == 0x80 { start -= 1 }
        guard start >= 0, start >= n - 3 else { return 0 }
        let lead = bytes[start]
        let needed: Int
        switch lead {
        case 0xC2...0xDF: needed = 2
        case 0xE0...0xEF: needed = 3
        case 0xF0...0xF4: needed = 4
        default: return 0  // ASCII, or a byte that never starts a sequence
        }
        let present = n - start
        guard present < needed else { return 0 }  // complete (or over-long, hence invalid): release it
        if present >= 2 {
            // The second byte's range depends on the lead (no overlongs, surrogates, or > U+10FFFF);
            // later bytes only need to be continuation bytes, which the scan above ensured.
            let second = bytes[start + 1]
            let allowed: ClosedRange<UInt8>
            switch lead {
            case 0xE0: allowed = 0xA0...0xBF
            case 0xED: allowed = 0x80...0x9F
            case 0xF0: allowed = 0x90...0xBF
            case 0xF4: allowed = 0x80...0x8F
            default: allowed = 0x80...0xBF
            }
            guard allowed.contains(second) else { return 0 }
        }
        return present
    }
}
