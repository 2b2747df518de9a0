// DatasetFiles: reading dataset files the way Python's text mode does. A file is UTF-8; lines end at
// "\n", "\r\n" or "\r" (universal newlines: each becomes "\n"); line numbers are 1-based. JSONL lines are
// parsed one by one, so a malformed line is reported with its number; blank lines are skipped.
import Foundation

/// One line of a text file: its 1-based number and its text with the newline (if it had one) as "\n".
struct TextLine: Sendable, Equatable {
    var number: Int
    var text: String
}

enum DatasetFiles {
    static func bytes(_ path: String) throws -> [UInt8] {
        var isDirectory: ObjCBool = false
        guard FileManager.default.fileExists(atPath: path, isDirectory: &isDirectory), !isDirectory.boolValue,
            let data = FileManager.default.contents(atPath: path)
        else { throw EvaluationError.missingFile(path: path) }
        return [UInt8](data)
    }

    /// The file's lines as Python's `for line in open(path, encoding="utf-8")` yields them.
    static func lines(_ path: String) throws -> [TextLine] {
        let data = try bytes(path)
        var lines: [TextLine] = []
        var start = 0, i = 0
        func emit(end: Int, newline: Bool) throws {
            guard let text = String(validating: data[start..<end], as: UTF8.self) else {
                throw EvaluationError.malformedLine(path: path, line: lines.count + 1, reason: "not valid UTF-8")
            }
            lines.append(TextLine(number: lines.count + 1, text: newline ? text + "\n" : text))
        }
        while i < data.count {
            if data[i] == 0x0A || data[i] == 0x0D {
                try emit(end: i, newline: true)
                i += (data[i] == 0x0D && i + 1 < data.count && data[i + 1] == 0x0A) ? 2 : 1
                start = i
            } else {
                i += 1
            }
        }
        if start < data.count { try emit(end: data.count, newline: false) }
        return lines
    }

    /// Each non-blank line of a JSONL file as a JSON object, with its line number.
    static func jsonObjects(_ path: String) throws -> [(line: Int, object: [String: Any])] {
        var out: [(line: Int, object: [String: Any])] = []
        for line in try lines(path) where !PythonText.strip(PythonText.scalars(line.text)).isEmpty {
            let value: Any
            do {
                value = try JSONSerialization.jsonObject(with: Data(line.text.utf8), options: [.fragmentsAllowed])
            } catch {
                throw EvaluationError.malformedLine(
                    path: path, line: line.number, reason: "not valid JSON (\(jsonReason(error)))")
            }
            guard let object = value as? [String: Any] else {
                throw EvaluationError.malformedLine(path: path, line: line.number, reason: "expected a JSON object")
            }
            out.append((line.number, object))
        }
        return out
    }

    static func jsonReason(_ error: Error) -> String {
        let ns = error as NSError
        return (ns.userInfo[NSDebugDescriptionErrorKey] as? String) ?? ns.localizedDescription
    }

    static func isDirectory(_ path: String) -> Bool {
        var isDirectory: ObjCBool = false
        return FileManager.default.fileExists(atPath: path, isDirectory: &isDirectory) && isDirectory.boolValue
    }

    static func join(_ directory: String, _ name: String) -> String {
        URL(fileURLWithPath: directory).appendingPathComponent(name).path
    }

    static func hasExtension(_ path: String, _ extensions: [String]) -> Bool {
        extensions.contains(URL(fileURLWithPath: path).pathExtension.lowercased())
    }
}

/// Typed access to one JSONL record's fields, failing with the file and line.
struct JSONRecord {
    let path: String
    let line: Int
    let object: [String: Any]

    func fail(_ reason: String) -> EvaluationError { .malformedLine(path: path, line: line, reason: reason) }

    func string(_ key: String) throws -> String {
        guard let value = object[key], !(value is NSNull) else { throw fail("missing field \"\(key)\"") }
        guard let text = value as? String else { throw fail("field \"\(key)\" must be a string") }
        return text
    }

    func optionalString(_ key: String) throws -> String? {
        guard let value = object[key], !(value is NSNull) else { return nil }
        guard let text = value as? String else { throw fail("field \"\(key)\" must be a string") }
        return text
    }

    /// A 0/1 label given as a number or a string.
    func label(_ key: String) throws -> Int {
        guard let value = object[key], !(value is NSNull) else { throw fail("missing field \"\(key)\"") }
        if let text = value as? String, let n = Int(text), n == 0 || n == 1 { return n }
        if !(value is String), let n = value as? Int, n == 0 || n == 1 { return n }
        throw fail("field \"\(key)\" must be 0 or 1, got \(value is String ? "another string" : "another value")")
    }
}
