// QueryResult: the text-format rows of one statement, copied out of the PGresult so it can cross threads.
// Accessors decode PostgreSQL's text output (bigint, boolean, timestamptz as epoch, jsonb) and throw a
// StorageError that names the column when a value is not what the caller expected.

/// Rows and metadata of one executed statement.
public struct QueryResult: Sendable {
    /// Column names, in order.
    public let columns: [String]
    /// One entry per row; `nil` is SQL NULL.
    public let rows: [Row]
    /// Rows touched by INSERT/UPDATE/DELETE (`PQcmdTuples`), or the number of rows returned.
    public let affectedRows: Int

    init(columns: [String], rows: [Row], affectedRows: Int) {
        self.columns = columns
        self.rows = rows
        self.affectedRows = affectedRows
    }

    /// The first row, or nil for an empty result.
    public var first: Row? { rows.first }
}

/// One result row. Values keep PostgreSQL's text format until a typed accessor reads them.
public struct Row: Sendable {
    let columnIndex: [String: Int]
    let values: [String?]
    /// Cells whose bytes were not valid UTF-8, with a short explanation (they hold a repaired copy).
    let invalidUTF8: [Int: String]

    /// The raw text of a column; throws if the column is missing or its bytes were not UTF-8.
    public func text(_ column: String) throws -> String? {
        guard let index = columnIndex[column] else {
            throw StorageError(.decoding, "result has no column \"\(column)\"")
        }
        if let problem = invalidUTF8[index] {
            throw StorageError(.decoding, "column \"\(column)\" is not valid UTF-8 (\(problem))")
        }
        return values[index]
    }

    public func string(_ column: String) throws -> String {
        guard let value = try text(column) else { throw null(column) }
        return value
    }

    public func optionalInt(_ column: String) throws -> Int? {
        guard let value = try text(column) else { return nil }
        guard let number = Int(value) else {
            throw StorageError(.decoding, "column \"\(column)\" is not an integer: \(value.prefix(40))")
        }
        return number
    }

    public func int(_ column: String) throws -> Int {
        guard let value = try optionalInt(column) else { throw null(column) }
        return value
    }

    public func optionalDouble(_ column: String) throws -> Double? {
        guard let value = try text(column) else { return nil }
        guard let number = Double(value) else {
            throw StorageError(.decoding, "column \"\(column)\" is not a number: \(value.prefix(40))")
        }
        return number
    }

    public func double(_ column: String) throws -> Double {
        guard let value = try optionalDouble(column) else { throw null(column) }
        return value
    }

    public func bool(_ column: String) throws -> Bool {
        switch try text(column) {
        case "t", "true": return true
        case "f", "false": return false
        case nil: throw null(column)
        case let other?: throw StorageError(.decoding, "column \"\(column)\" is not a boolean: \(other.prefix(20))")
        }
    }

    /// A jsonb/json column parsed into a ``JSONValue``; nil for SQL NULL.
    public func json(_ column: String) throws -> JSONValue? {
        guard let value = try text(column) else { return nil }
        do {
            return try JSONValue(parsing: value)
        } catch {
            throw StorageError(.decoding, "column \"\(column)\" is not JSON: \(error)")
        }
    }

    /// A `text[]` column in PostgreSQL's array literal form, for simple elements (no quotes or commas).
    public func simpleTextArray(_ column: String) throws -> [String] {
        guard var value = try text(column) else { return [] }
        guard value.hasPrefix("{"), value.hasSuffix("}") else {
            throw StorageError(.decoding, "column \"\(column)\" is not an array: \(value.prefix(40))")
        }
        value.removeFirst()
        value.removeLast()
        if value.isEmpty { return [] }
        return value.split(separator: ",").map { part in
            var s = String(part)
            if s.hasPrefix("\""), s.hasSuffix("\""), s.count >= 2 { s = String(s.dropFirst().dropLast()) }
            return s
        }
    }

    private func null(_ column: String) -> StorageError {
        StorageError(.decoding, "column \"\(column)\" is unexpectedly NULL")
    }
}
