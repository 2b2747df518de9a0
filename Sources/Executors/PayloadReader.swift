// PayloadReader: typed, validated access to a job's JSON payload. Every problem becomes a permanent
// JobFailure whose message names the field, what was expected and what was found, e.g.
// "invalid generate payload: max_new_tokens must be a whole number from 1 to 4096, got -3".
import JobQueue
import Storage

/// Reads fields of a payload object, failing with clear messages.
struct PayloadReader {
    let kind: String
    let object: [String: JSONValue]
    /// "train." for the fields of a nested object, so that messages name the full path.
    var prefix = ""

    init(kind: String, payload: JSONValue?) throws {
        self.kind = kind
        guard let payload else { throw JobFailure.permanent("invalid \(kind) payload: it is missing") }
        guard let object = payload.objectValue else {
            throw JobFailure.permanent("invalid \(kind) payload: it must be a JSON object, got \(payload.typeName)")
        }
        self.object = object
    }

    func failure(_ message: String) -> JobFailure {
        .permanent("invalid \(kind) payload: \(message)")
    }

    /// Rejects keys outside `allowed` (typos such as "max_tokens" would otherwise be silently ignored).
    func rejectUnknownKeys(_ allowed: Set<String>) throws {
        let unknown = object.keys.filter { !allowed.contains($0) }.sorted()
        guard unknown.isEmpty else {
            let list = unknown.map { "\"\(prefix)\($0)\"" }.joined(separator: ", ")
            throw failure(
                "unknown field\(unknown.count > 1 ? "s" : "") \(list); allowed: \(allowed.sorted().joined(separator: ", "))"
            )
        }
    }

    func has(_ key: String) -> Bool {
        if let value = object[key], value != .null { return true }
        return false
    }

    func string(_ key: String) throws -> String {
        guard let value = try optionalString(key) else { throw failure("\(prefix)\(key) is required") }
        return value
    }

    func optionalString(_ key: String, maxLength: Int = 1 << 20) throws -> String? {
        guard let value = object[key], value != .null else { return nil }
        guard let text = value.stringValue else {
            throw failure("\(prefix)\(key) must be a string, got \(value.typeName)")
        }
        guard text.utf8.count <= maxLength else {
            throw failure("\(prefix)\(key) is \(text.utf8.count) bytes long; the limit is \(maxLength)")
        }
        return text
    }

    func optionalInt(_ key: String, in range: ClosedRange<Int>) throws -> Int? {
        guard let value = object[key], value != .null else { return nil }
        let expected = "\(prefix)\(key) must be a whole number from \(range.lowerBound) to \(range.upperBound)"
        guard let number = value.doubleValue else { throw failure("\(expected), got \(value.typeName)") }
        guard number.isFinite, number == number.rounded(), number >= Double(range.lowerBound),
            number <= Double(range.upperBound)
        else {
            throw failure("\(expected), got \(Self.format(number))")
        }
        return Int(number)
    }

    /// A seed: any whole number from 0 to 2^63 − 1, kept exactly (JSON numbers past 2^53 are not rounded).
    func optionalSeed(_ key: String) throws -> UInt64? {
        guard let value = object[key], value != .null else { return nil }
        let expected = "\(prefix)\(key) must be a whole number from 0 to \(Int64.max)"
        guard value.doubleValue != nil else { throw failure("\(expected), got \(value.typeName)") }
        guard let number = value.int64Value, number >= 0 else { throw failure("\(expected), got \(value.jsonText)") }
        return UInt64(number)
    }

    func optionalDouble(_ key: String, in range: ClosedRange<Double>) throws -> Double? {
        guard let value = object[key], value != .null else { return nil }
        let expected =
            "\(prefix)\(key) must be a number from \(Self.format(range.lowerBound)) to \(Self.format(range.upperBound))"
        guard let number = value.doubleValue else { throw failure("\(expected), got \(value.typeName)") }
        guard number.isFinite, range.contains(number) else { throw failure("\(expected), got \(Self.format(number))") }
        return number
    }

    func optionalBool(_ key: String) throws -> Bool? {
        guard let value = object[key], value != .null else { return nil }
        guard let flag = value.boolValue else {
            throw failure("\(prefix)\(key) must be true or false, got \(value.typeName)")
        }
        return flag
    }

    func optionalStringList(_ key: String, maxCount: Int, maxLength: Int) throws -> [String]? {
        guard let value = object[key], value != .null else { return nil }
        guard let items = value.arrayValue else {
            throw failure("\(prefix)\(key) must be a list of strings, got \(value.typeName)")
        }
        guard items.count <= maxCount else {
            throw failure("\(prefix)\(key) has \(items.count) entries; the limit is \(maxCount)")
        }
        return try items.enumerated().map { index, item in
            guard let text = item.stringValue else {
                throw failure("\(prefix)\(key)[\(index)] must be a string, got \(item.typeName)")
            }
            guard text.utf8.count <= maxLength else {
                throw failure("\(prefix)\(key)[\(index)] is \(text.utf8.count) bytes long; the limit is \(maxLength)")
            }
            return text
        }
    }

    /// The reader of the nested object `key` (absent or null: nil).
    func nested(_ key: String) throws -> PayloadReader? {
        guard let value = object[key], value != .null else { return nil }
        guard let inner = value.objectValue else {
            throw failure("\(prefix)\(key) must be a JSON object, got \(value.typeName)")
        }
        var reader = PayloadReader(kind: kind, object: inner)
        reader.prefix = prefix + key + "."
        return reader
    }

    private init(kind: String, object: [String: JSONValue]) {
        self.kind = kind
        self.object = object
    }

    static func format(_ number: Double) -> String {
        if number.isFinite, number == number.rounded(), abs(number) < 1e15 { return String(Int64(number)) }
        return "\(number)"
    }
}
