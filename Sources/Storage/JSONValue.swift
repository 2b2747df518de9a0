// JSONValue: a payload, result or progress detail as a plain value tree. Decoded with JSONDecoder;
// encoded by hand so the text is compact, deterministic (sorted keys) and always valid for jsonb.
import Foundation

/// A JSON document.
public enum JSONValue: Sendable, Equatable, Codable {
    case null
    case bool(Bool)
    case number(Double)
    /// An integer a Double cannot hold exactly (|n| > 2^53), such as a 64-bit seed: kept to the last digit.
    case integer(Int64)
    case string(String)
    case array([JSONValue])
    case object([String: JSONValue])

    /// Parses JSON text (as PostgreSQL prints jsonb).
    public init(parsing text: String) throws {
        self = try JSONDecoder().decode(JSONValue.self, from: Data(text.utf8))
    }

    public init(from decoder: Decoder) throws {
        let container = try decoder.singleValueContainer()
        if container.decodeNil() {
            self = .null
        } else if let value = try? container.decode(Bool.self) {
            self = .bool(value)
        } else if let value = try? container.decode(Int64.self) {
            self = Self.exact(value)
        } else if let value = try? container.decode(Double.self) {
            self = .number(value)
        } else if let value = try? container.decode(String.self) {
            self = .string(value)
        } else if let value = try? container.decode([JSONValue].self) {
            self = .array(value)
        } else {
            self = .object(try container.decode([String: JSONValue].self))
        }
    }

    public func encode(to encoder: Encoder) throws {
        var container = encoder.singleValueContainer()
        switch self {
        case .null: try container.encodeNil()
        case .bool(let value): try container.encode(value)
        case .number(let value): try container.encode(value)
        case .integer(let value): try container.encode(value)
        case .string(let value): try container.encode(value)
        case .array(let value): try container.encode(value)
        case .object(let value): try container.encode(value)
        }
    }

    // MARK: - Access

    public subscript(key: String) -> JSONValue? {
        if case .object(let object) = self { return object[key] }
        return nil
    }

    public var objectValue: [String: JSONValue]? {
        if case .object(let value) = self { return value }
        return nil
    }

    public var arrayValue: [JSONValue]? {
        if case .array(let value) = self { return value }
        return nil
    }

    public var stringValue: String? {
        if case .string(let value) = self { return value }
        return nil
    }

    public var doubleValue: Double? {
        switch self {
        case .number(let value): return value
        case .integer(let value): return Double(value)
        default: return nil
        }
    }

    /// The value as an exact integer, when it is one (a whole `.number` within ±2^53, or an `.integer`).
    public var int64Value: Int64? {
        switch self {
        case .integer(let value): return value
        case .number(let value) where value == value.rounded() && abs(value) <= 9_007_199_254_740_992:
            return Int64(value)
        default: return nil
        }
    }

    /// `value` as a number: `.number` when a Double holds it exactly, else `.integer`.
    public static func exact(_ value: Int64) -> JSONValue {
        value.magnitude <= 1 << 53 ? .number(Double(value)) : .integer(value)
    }

    public var boolValue: Bool? {
        if case .bool(let value) = self { return value }
        return nil
    }

    /// The JSON type name, for error messages: "object", "array", "string", "number", "boolean", "null".
    public var typeName: String {
        switch self {
        case .null: return "null"
        case .bool: return "boolean"
        case .number, .integer: return "number"
        case .string: return "string"
        case .array: return "array"
        case .object: return "object"
        }
    }

    // MARK: - Encoding

    /// Compact JSON text with sorted keys. Non-finite numbers become `null` (JSON has no NaN) and U+0000
    /// becomes U+FFFD (PostgreSQL's jsonb rejects it).
    public var jsonText: String {
        var out = ""
        write(to: &out)
        return out
    }

    private func write(to out: inout String) {
        switch self {
        case .null:
            out += "null"
        case .bool(let value):
            out += value ? "true" : "false"
        case .number(let value):
            out += Self.format(value)
        case .integer(let value):
            out += String(value)
        case .string(let value):
            Self.writeString(value, to: &out)
        case .array(let values):
            out += "["
            for (index, value) in values.enumerated() {
                if index > 0 { out += "," }
                value.write(to: &out)
            }
            out += "]"
        case .object(let object):
            out += "{"
            for (index, (key, value)) in Self.storableMembers(object).enumerated() {
                if index > 0 { out += "," }
                Self.writeString(key, to: &out)
                out += ":"
                value.write(to: &out)
            }
            out += "}"
        }
    }

    /// An object's members as they are written: keys with U+0000 made storable (U+FFFD), sorted by that
    /// written form so the text is sorted as it reads. Keys that become equal ("a\u{0}" and "a\u{FFFD}")
    /// would be duplicates; of those, the member whose original key sorts last is kept (as jsonb keeps
    /// the last of duplicate keys), so the text never holds a key twice.
    private static func storableMembers(_ object: [String: JSONValue]) -> [(key: String, value: JSONValue)] {
        let members = object.map { (written: storableText($0.key), original: $0.key, value: $0.value) }
            .sorted { ($0.written, $0.original) < ($1.written, $1.original) }
        var out: [(key: String, value: JSONValue)] = []
        out.reserveCapacity(members.count)
        for member in members {
            if let last = out.last, last.key == member.written {
                out[out.count - 1] = (member.written, member.value)
            } else {
                out.append((member.written, member.value))
            }
        }
        return out
    }

    /// `text` with U+0000 (which jsonb cannot store) replaced by U+FFFD.
    private static func storableText(_ text: String) -> String {
        guard text.utf8.contains(0) else { return text }
        return String(String.UnicodeScalarView(text.unicodeScalars.map { $0 == "\u{0}" ? "\u{FFFD}" : $0 }))
    }

    private static func format(_ value: Double) -> String {
        guard value.isFinite else { return "null" }
        // A whole number is written as its digits whenever an Int64 holds it: "9.2e+17" would parse back
        // as an integer and print differently, so the text would not be stable under a round trip.
        if value == value.rounded(), let whole = Int64(exactly: value) { return String(whole) }
        return "\(value)"
    }

    private static func writeString(_ value: String, to out: inout String) {
        out += "\""
        for scalar in value.unicodeScalars {
            switch scalar {
            case "\"": out += "\\\""
            case "\\": out += "\\\\"
            case "\n": out += "\\n"
            case "\r": out += "\\r"
            case "\t": out += "\\t"
            case "\u{0}":
                // jsonb cannot store U+0000 at all; keep the text storable and mark the spot.
                out += "\u{FFFD}"
            case _ where scalar.value < 0x20:
                let hex = String(scalar.value, radix: 16)
                out += "\\u" + String(repeating: "0", count: 4 - hex.count) + hex
            default:
                out.unicodeScalars.append(scalar)
            }
        }
        out += "\""
    }
}

extension JSONValue: ExpressibleByStringLiteral, ExpressibleByIntegerLiteral, ExpressibleByFloatLiteral,
    ExpressibleByBooleanLiteral, ExpressibleByArrayLiteral, ExpressibleByDictionaryLiteral
{
    public init(stringLiteral value: String) { self = .string(value) }
    public init(integerLiteral value: Int) { self = Self.exact(Int64(value)) }
    public init(floatLiteral value: Double) { self = .number(value) }
    public init(booleanLiteral value: Bool) { self = .bool(value) }
    public init(arrayLiteral elements: JSONValue...) { self = .array(elements) }
    public init(dictionaryLiteral elements: (String, JSONValue)...) {
        self = .object(Dictionary(elements, uniquingKeysWith: { _, last in last }))
    }
}
