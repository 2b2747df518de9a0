// PGConnection: one libpq connection, used synchronously. Parameterized statements go through
// PQexecParams with text parameters and text results; multi-statement scripts (migrations) through PQexec;
// LISTEN/NOTIFY through PQsocket + PQconsumeInput + PQnotifies. Not thread-safe: `Database` confines each
// connection to one serial queue and `NotificationListener` to one thread.
import CLibPQ

#if canImport(Glibc)
    import Glibc
#elseif canImport(Darwin)
    import Darwin
#endif

/// A notification received on a LISTEN connection.
public struct PGNotification: Sendable, Equatable {
    public let channel: String
    public let payload: String
    /// Server process that sent it.
    public let senderPID: Int32
}

/// One open connection to PostgreSQL.
public final class PGConnection {
    private let handle: OpaquePointer

    private init(handle: OpaquePointer) {
        self.handle = handle
    }

    deinit {
        PQfinish(handle)
    }

    /// Opens a connection (blocking, bounded by `connect_timeout`).
    public static func connect(_ settings: ConnectionSettings) throws -> PGConnection {
        let (keywords, values) = settings.keywordsAndValues()
        let handle = withCStringArray(keywords) { keys in
            withCStringArray(values) { vals in PQconnectdbParams(keys, vals, 1) }
        }
        guard let handle else {
            throw StorageError(.connectionFailed, "libpq could not allocate a connection")
        }
        guard PQstatus(handle) == CONNECTION_OK else {
            // libpq's parse errors quote the connection string ('missing "=" after "…"'), which may hold a
            // password: say only that it does not parse.
            let message =
                settings.conninfoParses
                ? Self.errorText(handle)
                : "libpq cannot parse the connection string (not shown: it may hold a password)"
            PQfinish(handle)
            throw StorageError(.connectionFailed, "cannot connect to PostgreSQL at \(settings.redacted): \(message)")
        }
        // NOTICEs (e.g. "schema already exists, skipping") would otherwise go straight to stderr.
        PQsetNoticeProcessor(handle, { _, _ in }, nil)
        // A SQL_ASCII database holds unchecked bytes, and the server refuses to send non-UTF-8 bytes to a UTF8
        // client: one bad payload would make every claim fail. Take the raw bytes instead; Row checks them.
        if let encoding = PQparameterStatus(handle, "server_encoding"), String(cString: encoding) == "SQL_ASCII" {
            PQsetClientEncoding(handle, "SQL_ASCII")
        }
        return PGConnection(handle: handle)
    }

    /// False once libpq has noticed the connection is broken.
    public var isOK: Bool { PQstatus(handle) == CONNECTION_OK }

    /// The backend's process id (`pg_backend_pid()`).
    public var backendPID: Int32 { PQbackendPID(handle) }

    /// The file descriptor to `poll()` for incoming notifications.
    public var socket: Int32 { PQsocket(handle) }

    /// Runs one statement with `$1…$n` text parameters (nil = SQL NULL).
    public func execute(_ sql: String, _ parameters: [String?] = [], statement: String? = nil) throws -> QueryResult {
        let result: OpaquePointer? = withOptionalCStringArray(parameters) { params in
            PQexecParams(handle, sql, Int32(parameters.count), nil, params, nil, nil, 0)
        }
        return try collect(result, statement: statement)
    }

    /// Runs a script of several statements without parameters (migrations, LISTEN).
    public func executeScript(_ sql: String, statement: String? = nil) throws {
        var result = PQexec(handle, sql)
        // PQexec returns only the last result; earlier errors stop the script and are the one returned.
        _ = try collect(result, statement: statement)
        // Drain anything left (there should be nothing after PQexec).
        result = PQgetResult(handle)
        while let extra = result {
            PQclear(extra)
            result = PQgetResult(handle)
        }
    }

    /// Reads whatever the server sent (non-blocking) and returns the notifications among it.
    public func consumeNotifications() throws -> [PGNotification] {
        guard PQconsumeInput(handle) == 1 else {
            throw StorageError(.connectionLost, Self.errorText(handle))
        }
        var notifications: [PGNotification] = []
        while let pointer = PQnotifies(handle) {
            let notify = pointer.pointee
            notifications.append(
                PGNotification(
                    channel: String(cString: notify.relname),
                    payload: notify.extra.map { String(cString: $0) } ?? "",
                    senderPID: notify.be_pid))
            PQfreemem(pointer)
        }
        return notifications
    }

    // MARK: - Results

    private func collect(_ result: OpaquePointer?, statement: String?) throws -> QueryResult {
        guard let result else {
            throw StorageError(.connectionLost, Self.errorText(handle), statement: statement)
        }
        defer { PQclear(result) }
        let status = PQresultStatus(result)
        guard status == PGRES_COMMAND_OK || status == PGRES_TUPLES_OK || status == PGRES_EMPTY_QUERY else {
            let sqlState = Self.field(result, "C")
            var message = Self.field(result, "M") ?? Self.errorText(handle)
            if let detail = Self.field(result, "D") { message += "; detail: \(detail)" }
            if let hint = Self.field(result, "H") { message += "; hint: \(hint)" }
            let code: StorageError.Code =
                (PQstatus(handle) != CONNECTION_OK || status == PGRES_FATAL_ERROR && sqlState == nil)
                ? .connectionLost : .queryFailed
            throw StorageError(code, message, sqlState: sqlState, statement: statement)
        }
        let columnCount = Int(PQnfields(result))
        let rowCount = Int(PQntuples(result))
        var columns: [String] = []
        var index: [String: Int] = [:]
        for column in 0..<columnCount {
            let name = PQfname(result, Int32(column)).map { String(cString: $0) } ?? "?column?"
            columns.append(name)
            if index[name] == nil { index[name] = column }
        }
        var rows: [Row] = []
        rows.reserveCapacity(rowCount)
        for row in 0..<rowCount {
            var values: [String?] = []
            values.reserveCapacity(columnCount)
            var invalid: [Int: String] = [:]
            for column in 0..<columnCount {
                if PQgetisnull(result, Int32(row), Int32(column)) == 1 {
                    values.append(nil)
                    continue
                }
                let length = Int(PQgetlength(result, Int32(row), Int32(column)))
                guard let bytes = PQgetvalue(result, Int32(row), Int32(column)) else {
                    values.append(nil)
                    continue
                }
                let buffer = UnsafeRawBufferPointer(start: bytes, count: length)
                let (text, problem) = decodeUTF8(buffer)
                if let problem { invalid[column] = problem }
                values.append(text)
            }
            rows.append(Row(columnIndex: index, values: values, invalidUTF8: invalid))
        }
        let affected = PQcmdTuples(result).flatMap { Int(String(cString: $0)) } ?? rowCount
        return QueryResult(columns: columns, rows: rows, affectedRows: affected)
    }

    private static func field(_ result: OpaquePointer, _ code: Character) -> String? {
        guard let ascii = code.asciiValue, let pointer = PQresultErrorField(result, Int32(ascii)) else { return nil }
        return String(cString: pointer)
    }

    private static func errorText(_ handle: OpaquePointer) -> String {
        guard let pointer = PQerrorMessage(handle) else { return "unknown libpq error" }
        let text = String(cString: pointer).trimmingWhitespace()
        return text.isEmpty ? "unknown libpq error" : text
    }
}

/// Decodes bytes as UTF-8; on invalid input returns a repaired copy and a description of the first bad byte.
func decodeUTF8(_ buffer: UnsafeRawBufferPointer) -> (String, String?) {
    let bytes = buffer.bindMemory(to: UInt8.self)
    var iterator = bytes.makeIterator()
    var decoder = UTF8()
    var offset = 0
    var scalarStart = 0
    loop: while true {
        scalarStart = offset
        switch decoder.decode(&iterator) {
        case .scalarValue(let scalar):
            offset += UTF8.width(scalar)
        case .emptyInput:
            return (String(decoding: bytes, as: UTF8.self), nil)
        case .error:
            break loop
        }
    }
    let bad = scalarStart < bytes.count ? bytes[scalarStart] : 0
    let hex = String(bad, radix: 16, uppercase: true)
    return (
        String(decoding: bytes, as: UTF8.self), "byte 0x\(hex.count == 1 ? "0" + hex : hex) at offset \(scalarStart)"
    )
}

/// Calls `body` with a NULL-terminated C array of copies of `strings`.
private func withCStringArray<R>(_ strings: [String], _ body: (UnsafePointer<UnsafePointer<CChar>?>?) -> R) -> R {
    let copies: [UnsafeMutablePointer<CChar>?] = strings.map { strdup($0) } + [nil]
    defer { copies.forEach { free($0) } }
    let constants = copies.map { UnsafePointer($0) }
    return constants.withUnsafeBufferPointer { buffer in body(buffer.baseAddress) }
}

private func withOptionalCStringArray<R>(_ strings: [String?], _ body: (UnsafePointer<UnsafePointer<CChar>?>?) -> R)
    -> R
{
    let copies: [UnsafeMutablePointer<CChar>?] = strings.map { $0.flatMap { strdup($0) } }
    defer { copies.forEach { free($0) } }
    let constants = copies.map { UnsafePointer($0) }
    return constants.withUnsafeBufferPointer { buffer in body(buffer.baseAddress) }
}
