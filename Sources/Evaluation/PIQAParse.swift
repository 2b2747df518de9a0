// PIQAParse: how the Muwa notebook turned a generated answer into solution 1 or 2, in its order:
//   1. the first match of  \b([1-2])(?![\%\!\@\~\#\*])\b|[#]([1-2])|[\'\"]([1-2])[\'\"]  (Python `re`);
//   2. whichever of "first option|solution|choice" / "second option|solution|choice" occurs first
//      (str.find, case-sensitive, with the notebook's 999 "not found" sentinel);
//   3. the solution with the smaller Levenshtein distance to the prediction (ties → 1).
// The regex is written out by hand with Python's semantics (`\b` on Python's Unicode `\w`, leftmost
// match, alternatives in order); ICU's `\b` differs (it skips combining marks).

/// Which rule decided.
public enum PIQARule: String, Sendable, Equatable {
    case regex, option, levenshtein
}

public struct PIQAChoice: Sendable, Equatable {
    /// 1 or 2.
    public var choice: Int
    public var rule: PIQARule
}

public enum PIQAParse {
    /// The choice for `prediction` given the two solutions.
    public static func choose(prediction: String, sol1: String, sol2: String) -> PIQAChoice {
        let p = PythonText.scalars(prediction)
        if let digit = regexChoice(p) { return PIQAChoice(choice: digit, rule: .regex) }
        if let option = optionChoice(p) { return PIQAChoice(choice: option, rule: .option) }
        let d1 = levenshtein(p, PythonText.scalars(sol1)), d2 = levenshtein(p, PythonText.scalars(sol2))
        return PIQAChoice(choice: d2 < d1 ? 2 : 1, rule: .levenshtein)
    }

    /// The digit of the regex's first (leftmost) match, or nil when it does not match.
    static func regexChoice(_ p: Scalars) -> Int? {
        func isWord(_ i: Int) -> Bool { i >= 0 && i < p.count && PythonText.isWord(p[i]) }
        func digit(_ i: Int) -> Int? {
            guard i >= 0, i < p.count else { return nil }
            switch p[i] {
            case "1": return 1
            case "2": return 2
            default: return nil
            }
        }
        let blocked: Set<Unicode.Scalar> = ["%", "!", "@", "~", "#", "*"]
        for i in 0..<p.count {
            // \b([1-2])(?![%!@~#*])\b — the digit is a word character, so the boundaries need non-word
            // neighbours; the lookahead only looks at the next character.
            if let d = digit(i), !isWord(i - 1), !(i + 1 < p.count && blocked.contains(p[i + 1])), !isWord(i + 1) {
                return d
            }
            // [#]([1-2])
            if p[i] == "#", let d = digit(i + 1) { return d }
            // ['"]([1-2])['"]
            if p[i] == "'" || p[i] == "\"", let d = digit(i + 1), i + 2 < p.count, p[i + 2] == "'" || p[i + 2] == "\"" {
                return d
            }
        }
        return nil
    }

    /// The notebook's "first …" / "second …" rule: 1 or 2, or nil when neither phrase decides.
    static func optionChoice(_ p: Scalars) -> Int? {
        let notFound = 999
        func earliest(_ ordinal: String) -> Int {
            ["option", "solution", "choice"].map { noun in
                PythonText.find(p, PythonText.scalars("\(ordinal) \(noun)")) ?? notFound
            }.min() ?? notFound
        }
        let first = earliest("first"), second = earliest("second")
        if first < second && first < notFound { return 1 }
        if second < first && second < notFound { return 2 }
        return nil
    }

    /// Levenshtein distance over code points (unit cost insert/delete/substitute), as python-Levenshtein.
    public static func levenshtein(_ a: String, _ b: String) -> Int {
        levenshtein(PythonText.scalars(a), PythonText.scalars(b))
    }

    static func levenshtein(_ a: Scalars, _ b: Scalars) -> Int {
        if a.isEmpty { return b.count }
        if b.isEmpty { return a.count }
        var previous = Array(0...b.count)
        var current = [Int](repeating: 0, count: b.count + 1)
        for i in 1...a.count {
            current[0] = i
            for j in 1...b.count {
                let substitution = previous[j - 1] + (a[i - 1] == b[j - 1] ? 0 : 1)
                current[j] = min(substitution, previous[j] + 1, current[j - 1] + 1)
            }
            swap(&previous, &current)
        }
        return previous[b.count]
    }
}
