// MigrationSet: the numbered migration files (`migrations/NNNN_name.up.sql` with an optional
// `NNNN_name.down.sql`; a plain `NNNN_name.sql` counts as an up file without a down). The binary carries its
// own (EmbeddedSQL.swift, written from migrations/ by scripts/embed-sql.sh), so an installed or copied
// muwad migrates with nothing beside it; a folder given explicitly (--migrations-dir, MUWA_MIGRATIONS_DIR)
// replaces them.
import Foundation

/// One numbered schema change.
public struct Migration: Sendable, Equatable {
    public let version: Int
    /// "0003_sql_api": what `schema_migrations.name` and the messages say.
    public let name: String
    public let up: String
    public let down: String?

    /// FNV-1a (64 bit) of the up script, to notice an applied file that was edited afterwards.
    public var checksum: String {
        var hash: UInt64 = 0xcbf2_9ce4_8422_2325
        for byte in up.utf8 {
            hash ^= UInt64(byte)
            hash = hash &* 0x0000_0100_0000_01b3
        }
        let hex = String(hash, radix: 16)
        return String(repeating: "0", count: 16 - hex.count) + hex
    }
}

/// The migrations of one folder, sorted by version.
public struct MigrationSet: Sendable {
    public let directory: String
    public let migrations: [Migration]

    public init(directory: String, migrations: [Migration]) {
        self.directory = directory
        self.migrations = migrations.sorted { $0.version < $1.version }
    }

    /// The migrations compiled into this binary.
    public static func embedded() throws -> MigrationSet {
        try load(files: EmbeddedSQL.migrations, directory: "(built in)")
    }

    /// `explicit` (a flag) or MUWA_MIGRATIONS_DIR when given, else the migrations compiled into this binary.
    public static func find(explicit: String?) throws -> MigrationSet {
        if let explicit, !explicit.isEmpty { return try load(directory: explicit) }
        if let env = ProcessInfo.processInfo.environment["MUWA_MIGRATIONS_DIR"], !env.isEmpty {
            return try load(directory: env)
        }
        return try embedded()
    }

    /// Reads every `NNNN_name[.up|.down].sql` file of `directory`.
    public static func load(directory: String) throws -> MigrationSet {
        let names: [String]
        do {
            names = try FileManager.default.contentsOfDirectory(atPath: directory).sorted()
        } catch {
            throw StorageError(
                .missingResource, "cannot read the migrations folder \(directory): \(error.localizedDescription)")
        }
        let files = try names.filter { $0.hasSuffix(".sql") }.map { file -> (name: String, text: String) in
            let path = directory + "/" + file
            guard let data = FileManager.default.contents(atPath: path), let text = String(data: data, encoding: .utf8)
            else {
                throw StorageError(.missingResource, "\(path): cannot read it as UTF-8 text")
            }
            return (file, text)
        }
        return try load(files: files, directory: directory)
    }

    /// Migrations from (file name, text) pairs; `directory` names where they came from in messages.
    static func load(files: [(name: String, text: String)], directory: String) throws -> MigrationSet {
        var ups: [Int: (name: String, text: String)] = [:]
        var downs: [Int: String] = [:]
        for (file, text) in files {
            guard let parsed = parse(fileName: file) else {
                throw StorageError(
                    .missingResource,
                    "\(directory)/\(file): migration files are named NNNN_name.up.sql / NNNN_name.down.sql")
            }
            let path = directory + "/" + file
            if parsed.isDown {
                guard downs[parsed.version] == nil else {
                    throw StorageError(.missingResource, "\(path): a second down migration \(parsed.version)")
                }
                downs[parsed.version] = text
            } else {
                if let other = ups[parsed.version] {
                    throw StorageError(.missingResource, "\(path): version \(parsed.version) is also \(other.name)")
                }
                ups[parsed.version] = (parsed.name, text)
            }
        }
        for version in downs.keys where ups[version] == nil {
            throw StorageError(.missingResource, "\(directory): down migration \(version) has no up migration")
        }
        guard !ups.isEmpty else {
            throw StorageError(.missingResource, "\(directory) holds no migrations (NNNN_name.up.sql)")
        }
        let migrations = ups.map { version, up in
            Migration(version: version, name: up.name, up: up.text, down: downs[version])
        }
        return MigrationSet(directory: directory, migrations: migrations)
    }

    /// "0003_sql_api.up.sql" → (3, "0003_sql_api", up).
    static func parse(fileName: String) -> (version: Int, name: String, isDown: Bool)? {
        var stem = String(fileName.dropLast(".sql".count))
        var isDown = false
        if stem.hasSuffix(".up") {
            stem = String(stem.dropLast(3))
        } else if stem.hasSuffix(".down") {
            stem = String(stem.dropLast(5))
            isDown = true
        }
        let digits = stem.prefix { $0.isASCII && $0.isNumber }
        guard digits.count == 4, let version = Int(digits), version > 0 else { return nil }
        let rest = stem.dropFirst(4)
        guard rest.hasPrefix("_"), rest.count > 1,
            rest.dropFirst().allSatisfy({ $0.isASCII && ($0.isLowercase || $0.isNumber || $0 == "_") })
        else { return nil }
        return (version, stem, isDown)
    }

    /// Finds the migrations folder.
    ///
    /// Order: `explicit` (a flag), `MUWA_MIGRATIONS_DIR`, `<exe>/../share/muwa/migrations`, then `migrations/`
    /// in the executable's folder or any folder above it (a source checkout), then `./migrations`.
    public static func locate(explicit: String?, executablePath: String = CommandLine.arguments.first ?? "")
        throws -> String
    {
        if let explicit, !explicit.isEmpty { return explicit }
        if let env = ProcessInfo.processInfo.environment["MUWA_MIGRATIONS_DIR"], !env.isEmpty { return env }
        var candidates: [String] = []
        let executable = URL(fileURLWithPath: executablePath).resolvingSymlinksInPath()
        var folder = executable.deletingLastPathComponent()
        candidates.append(folder.appendingPathComponent("../share/muwa/migrations").standardized.path)
        for _ in 0..<6 {
            candidates.append(folder.appendingPathComponent("migrations").path)
            let parent = folder.deletingLastPathComponent()
            if parent.path == folder.path { break }
            folder = parent
        }
        candidates.append(FileManager.default.currentDirectoryPath + "/migrations")
        for candidate in candidates where looksLikeMigrations(candidate) {
            return candidate
        }
        throw StorageError(
            .missingResource,
            "cannot find the migrations folder (looked in \(candidates.joined(separator: ", "))); "
                + "pass --migrations-dir or set MUWA_MIGRATIONS_DIR")
    }

    private static func looksLikeMigrations(_ path: String) -> Bool {
        guard let names = try? FileManager.default.contentsOfDirectory(atPath: path) else { return false }
        return names.contains { $0.hasPrefix("0001_") && $0.hasSuffix(".sql") }
    }
}
