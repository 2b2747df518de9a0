// The systemd unit as shipped: resource limits, read confinement, the env file's install steps, and
// `systemd-analyze security --offline=yes` at most 2.0 (issue 9.10).
import Foundation
import XCTest
import TestSupport

final class SystemdUnitTests: XCTestCase {
    static let unitPath = Harness.repositoryRoot.appendingPathComponent("systemd/muwad.service").path

    /// `Key=value` lines of the [Service] section (a key may repeat).
    func serviceSettings() throws -> [(String, String)] {
        let text = try String(contentsOfFile: Self.unitPath, encoding: .utf8)
        var section = ""
        var settings: [(String, String)] = []
        for raw in text.split(separator: "\n") {
            let line = raw.trimmingCharacters(in: .whitespaces)
            if line.hasPrefix("[") { section = line }
            guard section == "[Service]", !line.hasPrefix("#"), let equals = line.firstIndex(of: "=") else { continue }
            settings.append((String(line[..<equals]), String(line[line.index(after: equals)...])))
        }
        return settings
    }

    func testResourceLimitsAndReadConfinement() throws {
        let settings = try serviceSettings()
        func value(_ key: String) -> String? { settings.last { $0.0 == key }?.1 }
        XCTAssertEqual(value("UMask"), "0027")
        XCTAssertNotNil(value("MemoryMax"))
        XCTAssertNotNil(value("MemoryHigh"))
        XCTAssertNotNil(value("TasksMax").flatMap(Int.init), "TasksMax must be a number")
        XCTAssertEqual(value("ProtectHome"), "yes")
        XCTAssertTrue(value("TemporaryFileSystem")?.contains("/srv:ro") == true)
        XCTAssertTrue(value("BindReadOnlyPaths")?.contains("/srv/muwa") == true)
        XCTAssertTrue(value("InaccessiblePaths")?.contains("/var/lib/postgresql") == true)
    }

    func testTheEnvFileIsInstalledReadableByTheServiceUserOnly() throws {
        let text = try String(contentsOfFile: Self.unitPath, encoding: .utf8)
        let install = text.split(separator: "\n").filter {
            $0.hasPrefix("#") && $0.contains("/etc/muwad/muwad.env") && $0.contains("install ")
        }
        XCTAssertEqual(install.count, 1, "one install line for the env file")
        let line = String(install.first ?? "")
        XCTAssertTrue(line.contains("install -d -m 0750 -g muwad /etc/muwad"), line)
        XCTAssertTrue(line.contains("install -m 0640 -g muwad systemd/muwad.env.example /etc/muwad/muwad.env"), line)
    }

    func testSecurityExposureIsAtMostTwo() throws {
        let analyze = ["/usr/bin/systemd-analyze", "/bin/systemd-analyze"].first {
            FileManager.default.isExecutableFile(atPath: $0)
        }
        guard let analyze else {
            throw XCTSkip("systemd-analyze is not installed (scripts/install-deps.sh installs systemd)")
        }
        let process = Process()
        process.executableURL = URL(fileURLWithPath: analyze)
        process.arguments = ["security", "--offline=yes", "--no-pager", Self.unitPath]
        let pipe = Pipe()
        process.standardOutput = pipe
        process.standardError = pipe
        try process.run()
        let output = String(decoding: pipe.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        process.waitUntilExit()
        guard let line = output.split(separator: "\n").first(where: { $0.contains("Overall exposure level") }),
            let number = line.split(separator: " ").compactMap({ Double($0) }).first
        else {
            return XCTFail("no exposure level in: \(output.suffix(500))")
        }
        XCTAssertLessThanOrEqual(number, 2.0, String(line))
    }
}
