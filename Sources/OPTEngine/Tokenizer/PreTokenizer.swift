// PreTokenizer: GPT-2's split of text into words before BPE, written out by hand over Unicode
// scalars instead of compiled from the regex
//
//     's|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+
//
// At each position the first alternative that matches wins, as in the regex engine:
//   1. an ASCII apostrophe followed by s, t, m, d, re, ve or ll (case-sensitive);
//   2. a run of letters (\p{L}: Lu Ll Lt Lm Lo), of numbers (\p{N}: Nd Nl No) or of anything else
//      that is not whitespace, optionally preceded by one U+0020 space;
//   3. a run of whitespace (\s: White_Space — U+0009…U+000D, U+0085, and Zs, Zl, Zp). When the run
//      is followed by a non-space and is longer than one scalar, its last scalar is left for the
//      next word (`\s+(?!\S)` backtracks one step), so "a   b" splits as "a", "  ", " b".
//
// The input is UTF-8 bytes and the output is byte ranges into it: the words are never copied.

enum PreTokenizer {
    enum CharClass: UInt8 {
        case letter, number, space, other
    }

    /// Calls `body(start, end)` for each word of `bytes`, in order; the words tile the input.
    static func split(_ bytes: UnsafeBufferPointer<UInt8>, _ body: (Int, Int) -> Void) {
        let n = bytes.count
        var i = 0
        while i < n {
            let (c, length) = scalar(in: bytes, at: i)
            // 1. contractions
            if c == 0x27, let end = contractionEnd(bytes, after: i) {
                body(i, end)
                i = end
                continue
            }
            // 2. " ?\p{L}+", " ?\p{N}+", " ?[^\s\p{L}\p{N}]+"
            var runClass = charClass(c)
            var start = i
            if c == 0x20, i + 1 < n {
                let next = charClass(scalar(in: bytes, at: i + 1).value)
                if next != .space {
                    runClass = next
                    start = i + 1
                }
            }
            if runClass != .space {
                var j = start
                while j < n {
                    let (cj, lj) = scalar(in: bytes, at: j)
                    if charClass(cj) != runClass { break }
                    j += lj
                }
                body(i, j)
                i = j
                continue
            }
            // 3. "\s+(?!\S)" then "\s+"
            var j = i + length
            var lastStart = i
            while j < n {
                let (cj, lj) = scalar(in: bytes, at: j)
                if charClass(cj) != .space { break }
                lastStart = j
                j += lj
            }
            if j < n, lastStart > i { j = lastStart }
            body(i, j)
            i = j
        }
    }

    /// Convenience for tests and callers holding a String: the words as Strings.
    static func split(_ text: String) -> [String] {
        var text = text
        return text.withUTF8 { buffer in
            var words: [String] = []
            split(buffer) { start, end in
                words.append(String(decoding: UnsafeBufferPointer(rebasing: buffer[start..<end]), as: UTF8.self))
            }
            return words
        }
    }

    // MARK: - scalars and their classes

    /// The end of "'s", "'t", "'m", "'d", "'re", "'ve" or "'ll" starting at `i` (an apostrophe), if any.
    @inline(__always)
    private static func contractionEnd(_ bytes: UnsafeBufferPointer<UInt8>, after i: Int) -> Int? {
        let n = bytes.count
        guard i + 1 < n else { return nil }
        switch bytes[i + 1] {
        case UInt8(ascii: "s"), UInt8(ascii: "t"), UInt8(ascii: "m"), UInt8(ascii: "d"):
            return i + 2
        case UInt8(ascii: "r"), UInt8(ascii: "v"):
            return i + 2 < n && bytes[i + 2] == UInt8(ascii: "e") ? i + 3 : nil
        case UInt8(ascii: "l"):
            return i + 2 < n && bytes[i + 2] == UInt8(ascii: "l") ? i + 3 : nil
        default:
            return nil
        }
    }

    /// Decodes the scalar starting at byte `i`. Input comes from Swift Strings and is valid UTF-8;
    /// a stray byte (truncated or malformed sequence) reads as one U+FFFD of length 1.
    @inline(__always)
    static func scalar(in bytes: UnsafeBufferPointer<UInt8>, at i: Int) -> (value: UInt32, length: Int) {
        let b0 = UInt32(bytes[i])
        if b0 < 0x80 { return (b0, 1) }
        let length: Int
        var value: UInt32
        switch b0 {
        case 0xC2...0xDF: length = 2; value = b0 & 0x1F
        case 0xE0...0xEF: length = 3; value = b0 & 0x0F
        case 0xF0...0xF4: length = 4; value = b0 & 0x07
        default: return (0xFFFD, 1)
        }
        guard i + length <= bytes.count else { return (0xFFFD, 1) }
        for k in 1..<length {
            let b = UInt32(bytes[i + k])
            guard b & 0xC0 == 0x80 else { return (0xFFFD, 1) }
            value = value << 6 | (b & 0x3F)
        }
        return (value, length)
    }

    private static let asciiClasses: [CharClass] = (0..<128).map { value in
        let scalar = Unicode.Scalar(UInt8(value))
        switch scalar {
        case "a"..."z", "A"..."Z": return .letter
        case "0"..."9": return .number
        case "\t", "\n", "\u{0B}", "\u{0C}", "\r", " ": return .space
        default: return .other
        }
    }

    @inline(__always)
    static func charClass(_ value: UInt32) -> CharClass {
        if value < 128 { return asciiClasses[Int(value)] }
        return nonASCIIClass(value)
    }

    private static func nonASCIIClass(_ value: UInt32) -> CharClass {
        switch value {
        case 0x85, 0xA0, 0x1680, 0x2000...0x200A, 0x2028, 0x2029, 0x202F, 0x205F, 0x3000:
            return .space
        default:
            break
        }
        guard let scalar = Unicode.Scalar(value) else { return .other }
        switch scalar.properties.generalCategory {
        case .uppercaseLetter, .lowercaseLetter, .titlecaseLetter, .modifierLetter, .otherLetter:
            return .letter
        case .decimalNumber, .letterNumber, .otherNumber:
            return .number
        default:
            return .other
        }
    }
}
