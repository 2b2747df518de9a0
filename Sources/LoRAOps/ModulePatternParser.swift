// ModulePatternParser: pattern text → syntax tree → Pike VM program for ModulePattern. Recursive
// descent over Python `re` syntax (the subset listed in ModulePattern.swift); nesting is bounded by
// the pattern's length cap, program size by ModulePattern.maxProgram.

indirect enum PatternNode {
    case empty
    case char(Unicode.Scalar)
    case set(CharSet)
    case any
    case atStart, atEnd, atAbsoluteEnd
    case group(PatternNode, capture: Int?)
    case concat([PatternNode])
    case alternation([PatternNode])
    case repeated(PatternNode, min: Int, max: Int?, lazy: Bool)
}

struct PatternParser {
    let scalars: [Unicode.Scalar]
    var at = 0
    var groupCount = 0
    private var depth = 0

    init(scalars: [Unicode.Scalar]) { self.scalars = scalars }

    private typealias Refusal = ModulePattern.Refusal
    private var peek: Unicode.Scalar? { at < scalars.count ? scalars[at] : nil }
    private func peek(_ offset: Int) -> Unicode.Scalar? { at + offset < scalars.count ? scalars[at + offset] : nil }

    mutating func parseAll() throws -> PatternNode {
        let node = try parseAlternation()
        guard at == scalars.count else { throw Refusal(reason: "unbalanced ')' at position \(at)") }
        return node
    }

    private mutating func parseAlternation() throws -> PatternNode {
        depth += 1
        defer { depth -= 1 }
        guard depth <= 100 else { throw Refusal(reason: "groups nest too deep") }
        var branches = [try parseConcat()]
        while peek == "|" {
            at += 1
            branches.append(try parseConcat())
        }
        return branches.count == 1 ? branches[0] : .alternation(branches)
    }

    private mutating func parseConcat() throws -> PatternNode {
        var items: [PatternNode] = []
        while let c = peek, c != "|", c != ")" {
            var atom = try parseAtom()
            while let q = try parseQuantifier() {
                if case .atStart = atom { throw Refusal(reason: "a quantifier after '^'") }
                atom = .repeated(atom, min: q.min, max: q.max, lazy: q.lazy)
            }
            items.append(atom)
        }
        return items.isEmpty ? .empty : items.count == 1 ? items[0] : .concat(items)
    }

    private mutating func parseQuantifier() throws -> (min: Int, max: Int?, lazy: Bool)? {
        guard let c = peek else { return nil }
        var bounds: (Int, Int?)
        switch c {
        case "*": bounds = (0, nil); at += 1
        case "+": bounds = (1, nil); at += 1
        case "?": bounds = (0, 1); at += 1
        case "{":
            guard let parsed = try parseBraces() else { return nil }  // not a quantifier: a literal '{'
            bounds = parsed
        default: return nil
        }
        var lazy = false
        if peek == "?" {
            lazy = true; at += 1
        } else if peek == "+" {
            throw Refusal(reason: "possessive quantifiers are not supported")
        }
        return (bounds.0, bounds.1, lazy)
    }

    /// `{m}`, `{m,}`, `{,n}`, `{m,n}`; nil (position unchanged) when the braces are not a quantifier.
    private mutating func parseBraces() throws -> (Int, Int?)? {
        var i = at + 1
        func number() -> Int? {
            var value: Int?
            while i < scalars.count, let d = Int(String(scalars[i])), scalars[i].isASCII {
                value = min((value ?? 0) * 10 + d, 1_000_000)
                i += 1
            }
            return value
        }
        let low = number()
        var high = low
        if i < scalars.count, scalars[i] == "," {
            i += 1
            high = number()
        } else if low == nil {
            return nil
        }
        guard i < scalars.count, scalars[i] == "}" else { return nil }
        at = i + 1
        let m = low ?? 0
        guard m <= ModulePattern.maxRepeat, (high ?? 0) <= ModulePattern.maxRepeat else {
            throw Refusal(reason: "repetition bounds above \(ModulePattern.maxRepeat) are not supported")
        }
        if let high, high < m { throw Refusal(reason: "repetition {\(m),\(high)} has min > max") }
        return (m, high)
    }

    private mutating func parseAtom() throws -> PatternNode {
        let c = scalars[at]
        at += 1
        switch c {
        case ".": return .any
        case "^": return .atStart
        case "$": return .atEnd
        case "*", "+", "?": throw Refusal(reason: "nothing to repeat at position \(at - 1)")
        case "[": return .set(try parseClass())
        case "\\": return try parseEscape(inClass: false)
        case "(":
            var capture: Int?
            if peek == "?" {
                if peek(1) == ":" {
                    at += 2
                } else if peek(1) == "P", peek(2) == "<" {
                    guard let close = scalars[at...].firstIndex(of: ">") else {
                        throw Refusal(reason: "unterminated group name")
                    }
                    at = close + 1
                    groupCount += 1
                    capture = groupCount
                } else {
                    let kind: String
                    switch (peek(1), peek(2)) {
                    case ("=", _), ("!", _), ("<", "="), ("<", "!"): kind = "lookaround"
                    case ("P", "="): kind = "backreferences"
                    case ("(", _): kind = "conditional groups"
                    case ("#", _): kind = "comments"
                    default: kind = "inline flags and other (?…) groups"
                    }
                    throw Refusal(reason: "\(kind) are not supported")
                }
            } else {
                groupCount += 1
                capture = groupCount
            }
            let inner = try parseAlternation()
            guard peek == ")" else { throw Refusal(reason: "missing ')'") }
            at += 1
            return .group(inner, capture: capture)
        default: return .char(c)
        }
    }

    /// After a backslash: a class shorthand, an anchor or an escaped literal.
    private mutating func parseEscape(inClass: Bool) throws -> PatternNode {
        guard let c = peek else { throw Refusal(reason: "pattern ends with a backslash") }
        at += 1
        switch c {
        case "d": return .set(.digit)
        case "D": return .set(CharSet(ranges: CharSet.digit.ranges, negated: true))
        case "w": return .set(.word)
        case "W": return .set(CharSet(ranges: CharSet.word.ranges, negated: true))
        case "s": return .set(.space)
        case "S": return .set(CharSet(ranges: CharSet.space.ranges, negated: true))
        case "n": return .char("\n")
        case "t": return .char("\t")
        case "r": return .char("\r")
        case "A" where !inClass: return .atStart
        case "Z" where !inClass: return .atAbsoluteEnd
        case "1"..."9": throw Refusal(reason: "backreferences are not supported")
        case "b", "B": throw Refusal(reason: "word boundaries (\\\(c)) are not supported")
        default:
            guard !c.properties.isAlphabetic, !("0"..."9").contains(c) else {
                throw Refusal(reason: "the escape \\\(c) is not supported")
            }
            return .char(c)
        }
    }

    /// After '[': ranges, single characters and shorthands up to the closing ']'.
    private mutating func parseClass() throws -> CharSet {
        var set = CharSet()
        if peek == "^" { set.negated = true; at += 1 }
        var first = true
        while true {
            guard let c = peek else { throw Refusal(reason: "unterminated character class") }
            if c == "]" && !first { at += 1; return set }
            first = false
            at += 1
            var low: UInt32
            if c == "\\" {
                switch try parseEscape(inClass: true) {
                case .char(let e): low = e.value
                case .set(let inner) where !inner.negated:
                    set.ranges += inner.ranges
                    continue
                default: throw Refusal(reason: "negated shorthands inside a class are not supported")
                }
            } else {
                low = c.value
            }
            if peek == "-", let after = peek(1), after != "]" {
                at += 1
                var high = after.value
                at += 1
                if after == "\\" {
                    guard case .char(let e) = try parseEscape(inClass: true) else {
                        throw Refusal(reason: "a class shorthand cannot end a range")
                    }
                    high = e.value
                }
                guard low <= high else { throw Refusal(reason: "bad character range") }
                set.ranges.append(low...high)
            } else {
                set.ranges.append(low...low)
            }
        }
    }
}

/// Thompson construction of the program ModulePattern runs.
struct PatternCompiler {
    fileprivate(set) var program: [ModulePatternInst] = []

    mutating func emit(_ inst: ModulePatternInst) { program.append(inst) }

    private mutating func placeholder() throws -> Int {
        guard program.count < ModulePattern.maxProgram else {
            throw ModulePattern.Refusal(reason: "too complex (more than \(ModulePattern.maxProgram) states)")
        }
        program.append(.match)
        return program.count - 1
    }

    mutating func compile(_ node: PatternNode) throws {
        guard program.count < ModulePattern.maxProgram else {
            throw ModulePattern.Refusal(reason: "too complex (more than \(ModulePattern.maxProgram) states)")
        }
        switch node {
        case .empty: break
        case .char(let c): emit(.char(c))
        case .set(let s): emit(.set(s))
        case .any: emit(.any)
        case .atStart: emit(.atStart)
        case .atEnd: emit(.atEnd)
        case .atAbsoluteEnd: emit(.atAbsoluteEnd)
        case .group(let inner, let capture):
            if let capture { emit(.save(2 * capture)) }
            try compile(inner)
            if let capture { emit(.save(2 * capture + 1)) }
        case .concat(let items): for item in items { try compile(item) }
        case .alternation(let branches):
            var jumps: [Int] = []
            for (i, branch) in branches.enumerated() {
                if i == branches.count - 1 {
                    try compile(branch)
                } else {
                    let split = try placeholder()
                    try compile(branch)
                    jumps.append(try placeholder())
                    program[split] = .split(split + 1, program.count)
                }
            }
            for j in jumps { program[j] = .jump(program.count) }
        case .repeated(let inner, let min, let max, let lazy):
            for _ in 0..<min { try compile(inner) }
            if let max {
                // (inner (inner …)?)? — max − min optional copies
                var exits: [Int] = []
                for _ in min..<max {
                    let split = try placeholder()
                    exits.append(split)
                    try compile(inner)
                }
                for s in exits { program[s] = lazy ? .split(program.count, s + 1) : .split(s + 1, program.count) }
            } else {
                let loop = try placeholder()
                try compile(inner)
                emit(.jump(loop))
                program[loop] = lazy ? .split(program.count, loop + 1) : .split(loop + 1, program.count)
            }
        }
    }
}
