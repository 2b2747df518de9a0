// ModulePattern: the regexes of adapter_config.json (target_modules, exclude_modules, rank_pattern,
// layers_pattern) matched without backtracking — a Pike VM over a compiled program, so the time is
// O(pattern × name) whatever the pattern (`(.*)*X` answers at once instead of running for minutes).
// The subset peft configs use, with Python `re` semantics: literals and escapes, `.` (not newline),
// classes `[a-z_\d]` / `[^.]`, `\d \w \s` (and negations), `* + ? {m} {m,} {m,n}` greedy or lazy
// (`?` suffix), `|`, groups `( )` `(?: )` `(?P<name> )`, `^ $ \A \Z`. Anything else — backreferences,
// lookaround, inline flags, possessive quantifiers, `\b` — is refused by name, as are patterns over
// ``maxLength`` characters or compiling to more than ``maxProgram`` instructions.

/// A compiled pattern. Thread-safe to share: matching keeps its state on the stack.
struct ModulePattern: Sendable {
    /// Refusal reasons, worded for "target_modules regex '…': <reason>".
    struct Refusal: Error, Equatable { let reason: String }

    static let maxLength = 512
    static let maxProgram = 4096
    static let maxRepeat = 100

    private let program: [ModulePatternInst]
    /// Capture groups, group 0 (the whole match) included.
    let groups: Int

    init(_ pattern: String) throws {
        let scalars = Array(pattern.unicodeScalars)
        guard scalars.count <= Self.maxLength else {
            throw Refusal(reason: "longer than \(Self.maxLength) characters")
        }
        var parser = PatternParser(scalars: scalars)
        let tree = try parser.parseAll()
        var compiler = PatternCompiler()
        compiler.emit(.save(0))
        try compiler.compile(tree)
        compiler.emit(.save(1))
        compiler.emit(.match)
        program = compiler.program
        groups = parser.groupCount + 1
    }

    /// Python's `re.fullmatch(pattern, text) is not None`.
    func fullMatch(_ text: String) -> Bool { run(Array(text.unicodeScalars), full: true) != nil }

    /// Python's `re.match(pattern, text)`: the capture ranges (in scalars; nil for a group that did not
    /// take part) of the match starting at 0, or nil.
    func prefixMatch(_ scalars: [Unicode.Scalar]) -> [Range<Int>?]? {
        guard let slots = run(scalars, full: false) else { return nil }
        return (0..<groups).map { g in
            let (a, b) = (slots[2 * g], slots[2 * g + 1])
            return a >= 0 && b >= a ? a..<b : nil
        }
    }

    /// The Pike VM: every thread advances one scalar per step in priority order; a state reached twice
    /// in a step keeps its first (higher-priority) thread. Returns the capture slots of the match.
    private func run(_ s: [Unicode.Scalar], full: Bool) -> [Int]? {
        let slotCount = 2 * groups
        var current: [(pc: Int, slots: [Int])] = []
        var next: [(pc: Int, slots: [Int])] = []
        var seen = [Int](repeating: -1, count: program.count)
        var matched: [Int]?

        /// Adds the thread at `pc` and everything reachable from it without consuming input.
        func add(_ list: inout [(pc: Int, slots: [Int])], _ pc: Int, _ slots: [Int], at pos: Int) {
            var stack: [(Int, [Int])] = [(pc, slots)]
            while let (pc, slots) = stack.popLast() {
                guard seen[pc] != pos else { continue }
                seen[pc] = pos
                switch program[pc] {
                case .jump(let target): stack.append((target, slots))
                case .split(let first, let second):
                    stack.append((second, slots))
                    stack.append((first, slots))
                case .save(let n):
                    var copy = slots
                    if n < slotCount { copy[n] = pos }
                    stack.append((pc + 1, copy))
                case .atStart: if pos == 0 { stack.append((pc + 1, slots)) }
                case .atEnd:
                    if pos == s.count || (pos == s.count - 1 && s[pos] == "\n") { stack.append((pc + 1, slots)) }
                case .atAbsoluteEnd: if pos == s.count { stack.append((pc + 1, slots)) }
                default: list.append((pc, slots))
                }
            }
        }

        add(&current, 0, [Int](repeating: -1, count: slotCount), at: 0)
        var pos = 0
        while !current.isEmpty {
            next.removeAll(keepingCapacity: true)
            for thread in current {
                let scalar: Unicode.Scalar? = pos < s.count ? s[pos] : nil
                switch program[thread.pc] {
                case .match:
                    if !full || pos == s.count {
                        matched = thread.slots
                        break  // lower-priority threads of this step are cut
                    }
                    continue
                case .char(let c): if scalar == c { add(&next, thread.pc + 1, thread.slots, at: pos + 1) }
                case .set(let set):
                    if let scalar, set.contains(scalar) { add(&next, thread.pc + 1, thread.slots, at: pos + 1) }
                case .any: if let scalar, scalar != "\n" { add(&next, thread.pc + 1, thread.slots, at: pos + 1) }
                default: break
                }
                if case .match = program[thread.pc], !full || pos == s.count { break }
            }
            guard pos < s.count else { break }
            swap(&current, &next)
            pos += 1
        }
        return matched
    }
}

/// One instruction of a ModulePattern program.
enum ModulePatternInst: Sendable {
    case char(Unicode.Scalar)
    case set(CharSet)
    case any  // `.`: every scalar but "\n"
    case split(Int, Int)  // try the first, then the second
    case jump(Int)
    case save(Int)  // record the position in capture slot n
    case atStart, atEnd  // ^ / \A, $ (end or before a final "\n") / \Z (end)
    case atAbsoluteEnd
    case match
}

/// A character class: ranges (inclusive), possibly negated.
struct CharSet: Sendable {
    var ranges: [ClosedRange<UInt32>] = []
    var negated = false

    func contains(_ c: Unicode.Scalar) -> Bool {
        ranges.contains { $0.contains(c.value) } != negated
    }

    static let digit = CharSet(ranges: [48...57])
    static let word = CharSet(ranges: [
        48...57, 65...90, 95...95, 97...122, 0xAA...0xAA, 0xB5...0xB5, 0xBA...0xBA,
        0xC0...0xD6, 0xD8...0xF6, 0xF8...0x2FF, 0x370...0x1FFF, 0x3040...0xD7FF,
    ])
    static let space = CharSet(ranges: [9...13, 32...32, 0x1C...0x1F, 0x85...0x85, 0xA0...0xA0])
}
