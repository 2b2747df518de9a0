// PythonText: the few pieces of Python's `str` semantics that the reference metrics rely on, on Unicode
// scalars (Python strings are sequences of code points). Swift's String compares by canonical
// equivalence and iterates grapheme clusters, so "é" == "e\u{301}" in Swift but not in Python; the
// metrics must give Python's answers, so they work on `[Unicode.Scalar]` with these helpers:
//   isSpace   str.isspace (what str.split() and str.strip() remove)
//   isWord    the `\w` of Python's `re` for str patterns (what `\b` looks at)
//   lower     str.lower: full lowercase mappings, with Greek final sigma
//   find      str.find / `in`: code-point substring search
// tools/fixtures/make_eval_fixtures.py records Python's answers for every code point (cases/python_text.json).

typealias Scalars = [Unicode.Scalar]

enum PythonText {
    static func scalars(_ text: String) -> Scalars { Array(text.unicodeScalars) }

    static func string(_ scalars: Scalars) -> String {
        var view = String.UnicodeScalarView()
        view.append(contentsOf: scalars)
        return String(view)
    }

    /// str.isspace: bidirectional class WS, B or S, or category Zs.
    static func isSpace(_ s: Unicode.Scalar) -> Bool {
        switch s.value {
        case 0x09...0x0D, 0x1C...0x20, 0x85, 0xA0, 0x1680, 0x2000...0x200A, 0x2028, 0x2029, 0x202F, 0x205F, 0x3000:
            return true
        default:
            return false
        }
    }

    /// `\w` in Python's `re` (str patterns): a letter (L*), a character with a numeric type, or "_".
    static func isWord(_ s: Unicode.Scalar) -> Bool {
        if s.value < 0x80 {
            let v = s.value
            return (v >= 0x30 && v <= 0x39) || (v >= 0x41 && v <= 0x5A) || (v >= 0x61 && v <= 0x7A) || v == 0x5F
        }
        switch s.properties.generalCategory {
        case .uppercaseLetter, .lowercaseLetter, .titlecaseLetter, .modifierLetter, .otherLetter:
            return true
        default:
            return s.properties.numericType != nil
        }
    }

    /// str.lower(): each scalar's full lowercase mapping; U+03A3 becomes final sigma (U+03C2) after a
    /// cased letter and not before one (case-ignorable scalars skipped), as CPython's handle_capital_sigma.
    static func lower(_ text: Scalars) -> Scalars {
        var out = Scalars()
        out.reserveCapacity(text.count)
        for (i, s) in text.enumerated() {
            if s.value < 0x80 {
                out.append(s.value >= 0x41 && s.value <= 0x5A ? Unicode.Scalar(UInt8(s.value + 32)) : s)
            } else if s.value == 0x3A3 {
                out.append(isFinalSigma(text, at: i) ? "\u{3C2}" : "\u{3C3}")
            } else {
                out.append(contentsOf: s.properties.lowercaseMapping.unicodeScalars)
            }
        }
        return out
    }

    private static func isFinalSigma(_ text: Scalars, at i: Int) -> Bool {
        var j = i - 1
        while j >= 0, text[j].properties.isCaseIgnorable { j -= 1 }
        guard j >= 0, text[j].properties.isCased else { return false }
        j = i + 1
        while j < text.count, text[j].properties.isCaseIgnorable { j += 1 }
        return j == text.count || !text[j].properties.isCased
    }

    static func lower(_ text: String) -> Scalars { lower(scalars(text)) }

    /// str.strip() with no argument.
    static func strip(_ text: Scalars) -> Scalars {
        var start = 0, end = text.count
        while start < end, isSpace(text[start]) { start += 1 }
        while end > start, isSpace(text[end - 1]) { end -= 1 }
        return Array(text[start..<end])
    }

    /// str.rstrip() with no argument.
    static func rstrip(_ text: Scalars) -> Scalars {
        var end = text.count
        while end > 0, isSpace(text[end - 1]) { end -= 1 }
        return Array(text[..<end])
    }

    /// str.split() with no argument: runs of whitespace separate, no empty pieces.
    static func split(_ text: Scalars) -> [Scalars] {
        var pieces: [Scalars] = []
        var current = Scalars()
        for s in text {
            if isSpace(s) {
                if !current.isEmpty { pieces.append(current); current.removeAll(keepingCapacity: true) }
            } else {
                current.append(s)
            }
        }
        if !current.isEmpty { pieces.append(current) }
        return pieces
    }

    /// str.find: index (in scalars) of the first occurrence of `needle` at or after `from`, or nil.
    static func find(_ haystack: Scalars, _ needle: Scalars, from: Int = 0) -> Int? {
        guard needle.count <= haystack.count else { return nil }
        guard !needle.isEmpty else { return from <= haystack.count ? from : nil }
        var i = from
        while i + needle.count <= haystack.count {
            if haystack[i] == needle[0] {
                var k = 1
                while k < needle.count, haystack[i + k] == needle[k] { k += 1 }
                if k == needle.count { return i }
            }
            i += 1
        }
        return nil
    }

    /// `needle in haystack`.
    static func contains(_ haystack: Scalars, _ needle: Scalars) -> Bool { find(haystack, needle) != nil }

    /// `text.split(separator)`: the pieces between occurrences of a non-empty separator.
    static func split(_ text: Scalars, separator: Scalars) -> [Scalars] {
        precondition(!separator.isEmpty, "split needs a non-empty separator")
        var pieces: [Scalars] = []
        var start = 0
        while let at = find(text, separator, from: start) {
            pieces.append(Array(text[start..<at]))
            start = at + separator.count
        }
        pieces.append(Array(text[start...]))
        return pieces
    }
}
