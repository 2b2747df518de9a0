// ConnectionSettings: how to reach PostgreSQL. Whatever works for `psql` works here: a libpq conninfo
// string ("host=/run/postgresql dbname=muwa"), a postgres:// URL, or nothing at all (libpq then reads the
// standard PG* environment variables: PGHOST, PGPORT, PGDATABASE, PGUSER, PGPASSWORD, PGSERVICE, …).

/// Connection parameters handed to `PQconnectdbParams`.
public struct ConnectionSettings: Sendable, Equatable {
    /// A libpq conninfo string or `postgres://` URL; empty means "libpq defaults and PG* variables".
    public var conninfo: String
    /// Shown in `pg_stat_activity.application_name`; the user's conninfo may override it.
    public var applicationName: String
    /// Seconds libpq waits for a connection before giving up; the user's conninfo may override it.
    public var connectTimeoutSeconds: Int

    public init(conninfo: String, applicationName: String = "muwad", connectTimeoutSeconds: Int = 10) {
        self.conninfo = conninfo
        self.applicationName = applicationName
        self.connectTimeoutSeconds = connectTimeoutSeconds
    }

    /// True when `conninfo` is a URL rather than `key=value` pairs.
    public var isURL: Bool {
        conninfo.hasPrefix("postgres://") || conninfo.hasPrefix("postgresql://")
    }

    /// Keyword/value arrays for `PQconnectdbParams(…, expand_dbname: 1)`.
    ///
    /// Our defaults come first and the user's conninfo (expanded from `dbname`) after them, so anything the
    /// user wrote wins. TCP keepalives bound how long a statement can hang on a vanished server (so the
    /// daemon's loop keeps ticking during a network outage); `client_encoding` is pinned because every text
    /// value is decoded as UTF-8.
    func keywordsAndValues() -> (keywords: [String], values: [String]) {
        var pairs: [(String, String)] = [
            ("application_name", applicationName),
            ("connect_timeout", String(connectTimeoutSeconds)),
            ("keepalives", "1"),
            ("keepalives_idle", "10"),
            ("keepalives_interval", "5"),
            ("keepalives_count", "3"),
        ]
        let trimmed = conninfo.trimmingWhitespace()
        if !trimmed.isEmpty { pairs.append(("dbname", trimmed)) }
        pairs.append(("client_encoding", "UTF8"))
        return (pairs.map { $0.0 }, pairs.map { $0.1 })
    }

    /// The same settings pointed at another database on the same server (tests, quick start).
    public func withDatabase(_ name: String) -> ConnectionSettings {
        var copy = self
        if isURL {
            // postgres://user:pw@host:port/dbname?params  → replace the path.
            let (head, query) = conninfo.splitOnce("?")
            let schemeEnd = head.range(of: "://").map { head.distance(from: head.startIndex, to: $0.upperBound) } ?? 0
            let afterScheme = String(head.dropFirst(schemeEnd))
            let authority = afterScheme.splitOnce("/").0
            copy.conninfo = String(head.prefix(schemeEnd)) + authority + "/" + name + (query.map { "?" + $0 } ?? "")
        } else {
            // In a conninfo string the last occurrence of a keyword wins.
            copy.conninfo = conninfo.trimmingWhitespace() + " dbname='" + name + "'"
        }
        return copy
    }
}

extension String {
    func trimmingWhitespace() -> String {
        var s = Substring(self)
        while let first = s.first, first.isWhitespace { s.removeFirst() }
        while let last = s.last, last.isWhitespace { s.removeLast() }
        return String(s)
    }

    /// Splits at the first occurrence of `separator`: ("a", "b") for "a?b", ("a", nil) for "a".
    func splitOnce(_ separator: Character) -> (String, String?) {
        guard let index = firstIndex(of: separator) else { return (self, nil) }
        return (String(self[..<index]), String(self[self.index(after: index)...]))
    }
}
