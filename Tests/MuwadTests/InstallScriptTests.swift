// scripts/install.sh into a clean staging tree (DESTDIR): the layout the unit's header describes, modes
// that keep the env file's password to root and group muwad, ExecStart following PREFIX, an installed binary
// that runs, and an edited env file kept on a second install.
import Foundation
import XCTest

final class InstallScriptTests: XCTestCase {
    func testInstallsTheLayoutTheUnitDescribes() throws {
        let stage = FileManager.default.temporaryDirectory.appendingPathComponent("muwa-install-\(getpid())").path
        try? FileManager.default.removeItem(atPath: stage)
        defer { try? FileManager.default.removeItem(atPath: stage) }
        func install() throws -> (status: Int32, output: String) {
            try Harness.runProgram(
                "/bin/bash", [Harness.repositoryRoot.appendingPathComponent("scripts/install.sh").path],
                environment: Harness.cleanEnvironment(
                    ["DESTDIR": stage, "PREFIX": "/opt/muwa", "MUWA_BINARY": try Harness.binary()]))
        }
        let first = try install()
        XCTAssertEqual(first.status, 0, first.output)
        XCTAssertTrue(first.output.contains("muwad 0.1.0 installed"), first.output)

        func mode(_ path: String) throws -> Int {
            try XCTUnwrap((try FileManager.default.attributesOfItem(atPath: stage + path))[.posixPermissions] as? Int)
        }
        XCTAssertEqual(try mode("/opt/muwa/bin/muwad"), 0o755)
        XCTAssertEqual(try mode("/etc/muwad"), 0o750)
        XCTAssertEqual(try mode("/etc/muwad/muwad.env"), 0o640)
        XCTAssertEqual(try mode("/etc/sysusers.d/muwad.conf"), 0o644)
        XCTAssertEqual(try mode("/etc/systemd/system/muwad.service"), 0o644)
        XCTAssertTrue(FileManager.default.fileExists(atPath: stage + "/srv/muwa"))
        let unit = try String(contentsOfFile: stage + "/etc/systemd/system/muwad.service", encoding: .utf8)
        XCTAssertTrue(unit.contains("\nExecStart=/opt/muwa/bin/muwad serve\n"), unit)

        // The installed binary runs on its own.
        let version = try Harness.runMuwadAt(stage + "/opt/muwa/bin/muwad", ["--version"])
        XCTAssertEqual(version.output.trimmingCharacters(in: .whitespacesAndNewlines), "0.1.0")

        // A second install keeps the operator's settings.
        try "MUWA_DATABASE_URL=host=/run/postgresql dbname=prod\n".write(
            toFile: stage + "/etc/muwad/muwad.env", atomically: true, encoding: .utf8)
        let second = try install()
        XCTAssertEqual(second.status, 0, second.output)
        XCTAssertEqual(
            try String(contentsOfFile: stage + "/etc/muwad/muwad.env", encoding: .utf8),
            "MUWA_DATABASE_URL=host=/run/postgresql dbname=prod\n")
    }
}
