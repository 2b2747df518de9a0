// ConninfoRedaction: a connection string as log lines and error messages may show it. libpq itself parses it
// (PQconninfoParse: conninfo `key=value` pairs with any spacing, quoting and escapes, and postgres:// URLs
// with user:password@ and ?password= query parameters), and every option libpq marks as secret (its display
// character "*": password, sslpassword, …) is printed as ***. Never a pattern over the text: a pattern
// misses `password = x`, quoted values, tabs and URL forms.
//
//   "host=db password = 's3 cret'"         → "host=db password=***"
//   "postgresql://u:s3cret@db/muwa?sslmode=require" → "user=u password=*** dbname=muwa host=db sslmode=require"
//   a string libpq cannot parse            → "(a connection string libpq cannot parse; not shown)"
import CLibPQ

extension ConnectionSettings {
    /// The conninfo with every secret option replaced by ***, for log lines and error messages.
    public var redacted: String {
        Self.redact(conninfo)
    }

    /// False when libpq cannot parse the conninfo (its error message would quote the text).
    public var conninfoParses: Bool {
        let trimmed = conninfo.trimmingWhitespace()
        guard !trimmed.isEmpty else { return true }
        return Self.parse(trimmed) != nil
    }

    /// `conninfo` as `key=value` pairs, secrets as ***; the text itself is never shown when libpq cannot parse it.
    public static func redact(_ conninfo: String) -> String {
        let trimmed = conninfo.trimmingWhitespace()
        if trimmed.isEmpty { return "(libpq defaults / PG* environment)" }
        guard let options = parse(trimmed) else { return "(a connection string libpq cannot parse; not shown)" }
        let parts = options.map { option in
            option.secret ? "\(option.keyword)=***" : "\(option.keyword)=\(quote(option.value))"
        }
        return parts.isEmpty ? "(libpq defaults / PG* environment)" : parts.joined(separator: " ")
    }

    /// The options libpq finds in `conninfo` (only those given), or nil when it cannot parse it.
    static func parse(_ conninfo: String) -> [(keyword: String, value: String, secret: Bool)]? {
        var error: UnsafeMutablePointer<CChar>?
        guard let options = PQconninfoParse(conninfo, &error) else {
            if let error { PQfreemem(error) }
            return nil
        }
        defer { PQconninfoFree(options) }
        var found: [(keyword: String, value: String, secret: Bool)] = []
        var index = 0
        while let keyword = options[index].keyword {
            defer { index += 1 }
            guard let value = options[index].val else { continue }
            let name = String(cString: keyword)
            let display = options[index].dispchar.map { String(cString: $0) } ?? ""
            found.append((name, String(cString: value), display == "*" || name.contains("password")))
        }
        return found
    }

    /// A conninfo value: bare when it is plain, else single-quoted with \ and ' escaped.
    static func quote(_ value: String) -> String {
        let plain = !value.isEmpty && value.allSatisfy { !$0.isWhitespace && $0 != "'" && $0 != "\\" && $0 != "=" }
        if plain { return value }
        return "'" + value.replacingOccurrences(of: "\\", with: "\\\\").replacingOccurrences(of: "'", with: "\\'") + "'"
    }
}
