// LineLogHandler: one line per event on stderr, readable in journald. Job id and kind come first so that
// `journalctl -u muwad | grep job=42` finds a job's story. Under systemd (JOURNAL_STREAM set) each line
// starts with a syslog priority prefix ("<4>") instead of a timestamp: journald adds its own and maps
// the prefix to the entry's priority. With `--log-format json` (MUWA_LOG_FORMAT=json) each line is one
// JSON object instead — {"ts", "level", "message", "label", "job", "kind", …metadata} — for log shippers.
import Foundation
import Logging
import Storage

#if canImport(Glibc)
    import Glibc
#endif

struct LineLogHandler: LogHandler {
    /// How each line is written.
    enum Format: String, CaseIterable {
        case text, json
    }

    var metadata: Logger.Metadata = [:]
    var logLevel: Logger.Level
    private let label: String
    private let journald: Bool
    private let format: Format

    init(
        label: String, level: Logger.Level, format: Format = .text,
        journald: Bool = ProcessInfo.processInfo.environment["JOURNAL_STREAM"] != nil
    ) {
        self.label = label
        self.logLevel = level
        self.format = format
        self.journald = journald
    }

    /// Installs the handler for every logger of this process.
    static func bootstrap(level: Logger.Level, format: Format = .text) {
        LoggingSystem.bootstrap { label in LineLogHandler(label: label, level: level, format: format) }
    }

    subscript(metadataKey key: String) -> Logger.Metadata.Value? {
        get { metadata[key] }
        set { metadata[key] = newValue }
    }

    func log(event: LogEvent) {
        let level = event.level
        let message = event.message
        var all = metadata
        if let explicit = event.metadata { all.merge(explicit) { _, new in new } }
        if let error = event.error { all["error"] = "\(error)" }
        if format == .json {
            Self.writeLine(Self.jsonLine(level: level, message: "\(message)", label: label, metadata: all) + "\n")
            return
        }
        var text = journald ? "<\(Self.syslogPriority(level))>" : Self.timestamp() + " "
        text += Self.levelName(level)
        for key in ["job", "kind"] {
            if let value = all.removeValue(forKey: key) { text += " \(key)=\(value)" }
        }
        text += ": \(message)"
        for key in all.keys.sorted() {
            if let value = all[key] { text += " \(key)=\(value)" }
        }
        text = text.replacingOccurrences(of: "\n", with: " ⏎ ")
        Self.writeLine(text + "\n")
    }

    /// {"ts", "level", "message", "label", metadata…}: one JSON object (keys sorted), metadata as strings.
    static func jsonLine(
        level: Logger.Level, message: String, label: String, metadata: Logger.Metadata,
        timestamp: String = timestamp()
    ) -> String {
        var fields: [String: JSONValue] = [:]
        for (key, value) in metadata { fields[key] = .string("\(value)") }
        fields["ts"] = .string(timestamp)
        fields["level"] = .string(levelName(level).lowercased())
        fields["message"] = .string(message)
        fields["label"] = .string(label)
        return JSONValue.object(fields).jsonText
    }

    /// One write(2) per line, so lines of concurrent tasks never interleave.
    private static func writeLine(_ text: String) {
        var bytes = Array(text.utf8)
        bytes.withUnsafeMutableBytes { buffer in
            var offset = 0
            while offset < buffer.count {
                let written = write(2, buffer.baseAddress.map { $0 + offset }, buffer.count - offset)
                if written <= 0 { break }
                offset += written
            }
        }
    }

    static func levelName(_ level: Logger.Level) -> String {
        switch level {
        case .trace: return "TRACE"
        case .debug: return "DEBUG"
        case .info: return "INFO"
        case .notice: return "NOTICE"
        case .warning: return "WARN"
        case .error: return "ERROR"
        case .critical: return "CRIT"
        }
    }

    private static func syslogPriority(_ level: Logger.Level) -> Int {
        switch level {
        case .trace, .debug: return 7
        case .info: return 6
        case .notice: return 5
        case .warning: return 4
        case .error: return 3
        case .critical: return 2
        }
    }

    static func timestamp() -> String {
        var now = timespec()
        clock_gettime(CLOCK_REALTIME, &now)
        var seconds = now.tv_sec
        var parts = tm()
        gmtime_r(&seconds, &parts)
        return String(
            format: "%04d-%02d-%02dT%02d:%02d:%02d.%03dZ", Int(parts.tm_year) + 1900, Int(parts.tm_mon) + 1,
            Int(parts.tm_mday), Int(parts.tm_hour), Int(parts.tm_min), Int(parts.tm_sec), Int(now.tv_nsec / 1_000_000))
    }
}

extension Logger.Level {
    /// Parses "info", "warning"/"warn", …; nil for anything else.
    init?(name: String) {
        switch name.lowercased() {
        case "trace": self = .trace
        case "debug": self = .debug
        case "info": self = .info
        case "notice": self = .notice
        case "warning", "warn": self = .warning
        case "error": self = .error
        case "critical": self = .critical
        default: return nil
        }
    }
}
