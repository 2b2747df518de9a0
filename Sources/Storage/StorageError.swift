// StorageError: everything that can go wrong between muwad and PostgreSQL, with a human description.
// `isTransient` separates "the database is away, try again later" from "this statement is wrong".

/// An error from the Storage target.
public struct StorageError: Error, CustomStringConvertible, Sendable {
    /// What kind of failure this is.
    public enum Code: Sendable, Equatable {
        /// Could not open a connection (server down, wrong host, authentication).
        case connectionFailed
        /// The connection broke while a statement was in flight.
        case connectionLost
        /// The server answered with an error (SQLSTATE in ``StorageError/sqlState``).
        case queryFailed
        /// A result did not have the shape the caller expected.
        case decoding
        /// A named SQL statement or migration file is missing or malformed.
        case missingResource
        /// The database schema is older (or newer) than this binary.
        case schemaMismatch
    }

    public let code: Code
    public let message: String
    /// The five-character SQLSTATE for server errors (`23505`, `57P01`, …), when the server sent one.
    public let sqlState: String?
    /// Which named statement or migration was running, for the log line.
    public let statement: String?

    public init(_ code: Code, _ message: String, sqlState: String? = nil, statement: String? = nil) {
        self.code = code
        self.message = message
        self.sqlState = sqlState
        self.statement = statement
    }

    /// True when retrying later may succeed: connection trouble, server shutting down or starting,
    /// serialization failures and deadlocks. False for mistakes a retry cannot fix.
    public var isTransient: Bool {
        switch code {
        case .connectionFailed, .connectionLost:
            return true
        case .queryFailed:
            guard let state = sqlState else { return false }
            // 08: connection exception; 57P0x: admin/crash shutdown, cannot connect now; 53: insufficient
            // resources; 40001/40P01: serialization failure / deadlock.
            return state.hasPrefix("08") || state.hasPrefix("57P") || state.hasPrefix("53")
                || state == "40001" || state == "40P01"
        case .decoding, .missingResource, .schemaMismatch:
            return false
        }
    }

    public var description: String {
        var text = message
        if let statement { text = "\(statement): \(text)" }
        if let sqlState { text += " (SQLSTATE \(sqlState))" }
        return text
    }
}
