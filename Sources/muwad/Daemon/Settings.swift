// Settings: where a daemon setting comes from. A flag wins over the environment (MUWA_*), which wins over
// an env file (--env-file / MUWA_ENV_FILE, KEY=VALUE lines, as systemd's EnvironmentFile= reads them),
// which wins over the default. Durations accept "250ms", "15s", "2m", "1h" or plain seconds.
import ArgumentParser
import Foundation

/// Environment lookups with an optional env file underneath.
struct SettingsSource {
    private let environment: [String: String]
    private let file: [String: String]
    let envFilePath: String?

    /// Reads the process environment and, when given, the env file. The env file's PG* variables are also
    /// exported into this process (unless already set) so that libpq sees them.
    init(envFile: String?, environment: [String: String] = ProcessInfo.processInfo.environment) throws {
        self.environment = environment
        let path = envFile ?? environment["MUWA_ENV_FILE"]
        self.envFilePath = path
        if let path, !path.isEmpty {
            guard let data = FileManager.default.contents(atPath: path), let text = String(data: data, encoding: .utf8)
            else {
                throw ValidationError("cannot read the env file \(path)")
            }
            file = try Self.parseEnvFile(text, path: path)
            for (key, value) in file where key.hasPrefix("PG") && environment[key] == nil {
                setenv(key, value, 0)
            }
        } else {
            file = [:]
        }
    }

    /// The value of `name` from the environment, then the env file.
    func value(_ name: String) -> String? {
        if let value = environment[name], !value.isEmpty { return value }
        if let value = file[name], !value.isEmpty { return value }
        return nil
    }

    func string(_ flag: String?, env: String, default fallback: String) -> String {
        flag ?? value(env) ?? fallback
    }

    func list(_ flag: String?, env: String, default fallback: [String]) -> [String] {
        guard let raw = flag ?? value(env) else { return fallback }
        return raw.split(whereSeparator: { $0 == "," || $0 == " " }).map(String.init)
    }

    func int(_ flag: Int?, env: String, default fallback: Int) throws -> Int {
        if let flag { return flag }
        guard let raw = value(env) else { return fallback }
        guard let number = Int(raw.trimmingCharacters(in: .whitespaces)) else {
            throw ValidationError("\(env) must be a whole number, got \"\(raw)\"")
        }
        return number
    }

    func bool(_ flag: Bool, env: String) throws -> Bool {
        if flag { return true }
        guard let raw = value(env)?.lowercased() else { return false }
        switch raw {
        case "1", "true", "yes", "on": return true
        case "0", "false", "no", "off": return false
        default: throw ValidationError("\(env) must be true or false, got \"\(raw)\"")
        }
    }

    func seconds(_ flag: String?, env: String, default fallback: Double) throws -> Double {
        guard let raw = flag ?? value(env) else { return fallback }
        guard let seconds = parseDuration(raw) else {
            let source =
                flag != nil ? "--\(env.dropFirst(5).lowercased().replacingOccurrences(of: "_", with: "-"))" : env
            throw ValidationError("\(source) must be a duration such as 500ms, 15s, 2m or 1h, got \"\(raw)\"")
        }
        return seconds
    }

    /// KEY=VALUE lines; blank lines and # comments ignored; optional `export `, single or double quotes.
    static func parseEnvFile(_ text: String, path: String) throws -> [String: String] {
        var values: [String: String] = [:]
        for (number, rawLine) in text.split(separator: "\n", omittingEmptySubsequences: false).enumerated() {
            var line = rawLine.trimmingCharacters(in: .whitespaces)
            if line.isEmpty || line.hasPrefix("#") { continue }
            if line.hasPrefix("export ") { line = String(line.dropFirst(7)).trimmingCharacters(in: .whitespaces) }
            guard let equals = line.firstIndex(of: "=") else {
                throw ValidationError("\(path):\(number + 1): expected KEY=VALUE, got \"\(line.prefix(60))\"")
            }
            let key = line[..<equals].trimmingCharacters(in: .whitespaces)
            var value = line[line.index(after: equals)...].trimmingCharacters(in: .whitespaces)
            if value.count >= 2, let first = value.first, first == "\"" || first == "'", value.last == first {
                value = String(value.dropFirst().dropLast())
            }
            guard !key.isEmpty, key.allSatisfy({ $0.isLetter || $0.isNumber || $0 == "_" }) else {
                throw ValidationError("\(path):\(number + 1): \"\(key)\" is not a variable name")
            }
            values[key] = value
        }
        return values
    }
}

/// "250ms" → 0.25, "15s"/"15" → 15, "2m" → 120, "1h" → 3600, "1.5h" → 5400; nil when malformed or negative.
func parseDuration(_ text: String) -> Double? {
    let trimmed = text.trimmingCharacters(in: .whitespaces).lowercased()
    let units: [(String, Double)] = [("ms", 0.001), ("s", 1), ("m", 60), ("h", 3600), ("d", 86400)]
    for (suffix, scale) in units where trimmed.hasSuffix(suffix) {
        let number = trimmed.dropLast(suffix.count).trimmingCharacters(in: .whitespaces)
        if let value = Double(number), value.isFinite, value >= 0 { return value * scale }
    }
    if let value = Double(trimmed), value.isFinite, value >= 0 { return value }
    return nil
}
