// HostileFileTests: checkpoint files and model directories crafted to break the loader (issue 9) —
// a torch archive whose tensor wraps `count × elementSize` or broadcasts a tiny storage with stride 0,
// safetensors headers that are too large or whose length prefix is someone's secret, FIFOs, files
// where directories belong and the reverse. Each must end in an EngineError that says what is wrong
// without quoting the file, never in a crash, a huge allocation or a hang.
import Foundation
import XCTest

@testable import OPTEngine

final class HostileFileTests: XCTestCase {
    var scratch: URL!

    override func setUpWithError() throws {
        scratch = FileManager.default.temporaryDirectory.appendingPathComponent("muwa-hostile-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: scratch, withIntermediateDirectories: true)
    }

    override func tearDownWithError() throws {
        try? FileManager.default.removeItem(at: scratch)
    }

    func path(_ name: String) -> String { scratch.appendingPathComponent(name).path }

    func write(_ bytes: [UInt8], to path: String) throws {
        try Data(bytes).write(to: URL(fileURLWithPath: path))
    }

    /// A torch.save archive of one tensor "w" over a 4-float storage.
    func archive(size: [Int], stride: [Int], numel: Int = 4, offset: Int = 0) -> [UInt8] {
        let pickle = PickleWriter.stateDict([
            .init(
                name: "w", storage: "FloatStorage", key: "0", numel: numel, offset: offset, size: size, stride: stride)
        ])
        let data = [Float](repeating: 1, count: 4).flatMap { le($0.bitPattern) }
        return ZipBuilder.build([.init("archive/data.pkl", pickle), .init("archive/data/0", data)], zip64: false)
    }

    func assertThrows<T>(
        _ body: @autoclosure () throws -> T, _ expected: EngineError? = nil, mentions: [String] = [],
        excludes: [String] = [], _ label: String, file: StaticString = #filePath, line: UInt = #line
    ) {
        do {
            _ = try body()
            XCTFail("\(label): no error thrown", file: file, line: line)
        } catch let error as EngineError {
            if let expected { XCTAssertEqual(error, expected, label, file: file, line: line) }
            for word in mentions where !error.description.contains(word) {
                XCTFail("\(label): \"\(error)\" does not mention \(word)", file: file, line: line)
            }
            for word in excludes where error.description.contains(word) {
                XCTFail("\(label): \"\(error)\" quotes \(word)", file: file, line: line)
            }
        } catch {
            XCTFail("\(label): \(error) is not an EngineError", file: file, line: line)
        }
    }

    // MARK: - torch archives (defects 1 and 2)

    /// The 635-byte file of the report: size [2^62+4], stride [0] wrapped count × 4 to 16 bytes and the
    /// gather wrote past its buffer; stride-0 "broadcasts" of a 4-float storage to 2^31 elements
    /// allocated 8 GiB. All are refused because the tensor needs more elements than the storage holds.
    func testWrappingAndBroadcastTensorsAreRefused() throws {
        let cases: [(String, [UInt8], [String])] = [
            ("wrapping-count", archive(size: [(1 << 62) + 4], stride: [0]), ["'w'", "elements"]),
            ("broadcast-2^31", archive(size: [1 << 31], stride: [0]), ["'w'", "broadcast"]),
            ("broadcast-rows", archive(size: [1 << 20, 4], stride: [0, 1]), ["'w'"]),
            ("overflowing-count", archive(size: [1 << 40, 1 << 40], stride: [0, 0]), ["'w'"]),
            ("overflowing-stride", archive(size: [2, 2], stride: [1 << 62, 1]), ["'w'"]),
            ("five-of-four", archive(size: [5], stride: [0]), ["'w'"]),
        ]
        for (name, bytes, mentions) in cases {
            let file = path("\(name).bin")
            try write(bytes, to: file)
            assertThrows(try TorchZipFile(path: file), mentions: [file] + mentions, name)
        }
        // 5 million DUPs of one value: a 5 MB pickle whose stack would take ~200 MB is refused early.
        let dups: [UInt8] = [0x80, 2, 0x4E] + [UInt8](repeating: 0x32, count: 5_000_000) + [0x2E]
        let dupFile = path("dups.bin")
        try write(ZipBuilder.build([.init("archive/data.pkl", dups)], zip64: false), to: dupFile)
        assertThrows(try TorchZipFile(path: dupFile), mentions: [dupFile, "values"], "dups")

        // A legitimate strided view (a transpose) of the same storage still loads.
        let file = path("transposed.bin")
        try write(archive(size: [2, 2], stride: [1, 2]), to: file)
        XCTAssertEqual(try TorchZipFile(path: file).tensors["w"]?.shape, [2, 2])
    }

    // MARK: - safetensors headers (defects 2 and 9)

    func testSafetensorsHeaderOverTheLimitIsRefused() throws {
        let length = SafetensorsFile.maxHeaderLength + 8
        var bytes = le(UInt64(length)) + Array("{".utf8)
        bytes += [UInt8](repeating: UInt8(ascii: " "), count: length - 2) + Array("}".utf8)
        let file = path("big-header.safetensors")
        try write(bytes, to: file)
        assertThrows(try SafetensorsFile(path: file), mentions: [file, "MiB limit"], excludes: ["\(length)"], "big")
    }

    /// A header just under the limit, of ~270,000 tiny entries, parses without a peak of many times its
    /// size (JSONSerialization's object tree took 56×: 5.6 GB for 100 MB). Peak RSS is reset through
    /// /proc/self/clear_refs, so the measure is this parse's own.
    func testLargeHeaderParsesWithBoundedPeakMemory() throws {
        var header = "{"
        var offset = 0
        var index = 0
        while header.utf8.count < SafetensorsFile.maxHeaderLength - 100 {
            header += "\"t\(index)\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[\(offset),\(offset + 4)]},"
            offset += 4
            index += 1
        }
        header.removeLast()
        header += "}"
        let file = path("many-tensors.safetensors")
        try write(le(UInt64(header.utf8.count)) + Array(header.utf8) + [UInt8](repeating: 0, count: offset), to: file)
        header = ""
        guard let baseline = peakResidentBytes(reset: true) else { throw XCTSkip("no /proc/self/status") }
        let parsed = try SafetensorsFile(path: file)
        XCTAssertEqual(parsed.tensors.count, index)
        let peak = try XCTUnwrap(peakResidentBytes(reset: false)) - baseline
        let headerBytes = SafetensorsFile.maxHeaderLength
        print("safetensors header of \(headerBytes >> 20) MiB, \(index) tensors: peak +\(peak >> 20) MiB")
        XCTAssertLessThan(peak, 24 * headerBytes, "peak \(peak >> 20) MiB")
    }

    /// VmHWM of this process (after resetting it to the current RSS when `reset`), in bytes.
    func peakResidentBytes(reset: Bool) -> Int? {
        if reset {
            guard let handle = FileHandle(forWritingAtPath: "/proc/self/clear_refs") else { return nil }
            handle.write(Data("5".utf8))
            try? handle.close()
        }
        guard let status = try? String(contentsOfFile: "/proc/self/status", encoding: .utf8) else { return nil }
        for line in status.split(separator: "\n") where line.hasPrefix(reset ? "VmRSS:" : "VmHWM:") {
            return line.split(separator: " ").compactMap { Int($0) }.first.map { $0 << 10 }
        }
        return nil
    }

    /// A shard symlinked to a file of secrets: its first 8 bytes, read as the header length, must not
    /// appear in the error (neither as text nor as the number they make).
    func testSymlinkedSecretIsNotQuoted() throws {
        let secret = "PASSWORD=hunter2-and-some-more-secret-text\n"
        try secret.write(toFile: path("secret.env"), atomically: true, encoding: .utf8)
        let asNumber = Array(secret.utf8.prefix(8)).enumerated().reduce(UInt64(0)) {
            $0 | UInt64($1.element) << (8 * UInt64($1.offset))
        }
        let dir = path("model")
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        try FileManager.default.createSymbolicLink(
            atPath: dir + "/model.safetensors", withDestinationPath: path("secret.env"))
        for body in [
            { _ = try SafetensorsFile(path: dir + "/model.safetensors") },
            { _ = try CheckpointReader.load(directory: dir) },
        ] {
            assertThrows(
                try body(), mentions: ["model.safetensors"],
                excludes: ["PASSWORD", "hunter2", "\(asNumber)", "\(Int64(bitPattern: asNumber))"], "secret")
        }
        // Small enough to pass the length check: the JSON it points at is not quoted either.
        var small = le(UInt64(secret.utf8.count)) + Array(secret.utf8)
        small[8] = UInt8(ascii: "{")
        try write(small, to: path("small.safetensors"))
        assertThrows(
            try SafetensorsFile(path: path("small.safetensors")), mentions: ["not valid JSON"],
            excludes: ["PASSWORD", "hunter2"], "small")
    }

    // MARK: - files and directories (defect 9)

    func testDirectoryAndFileErrorsSayWhatIsWrong() throws {
        let file = path("plain-file")
        try write([1, 2, 3], to: file)
        assertThrows(try OPTModel.load(directory: file), .notADirectory(path: file), "model dir is a file")
        assertThrows(try CheckpointReader.load(directory: file), .notADirectory(path: file), "weights dir is a file")
        assertThrows(try BPETokenizer.load(directory: file), .notADirectory(path: file), "tokenizer dir is a file")
        let missing = path("nowhere")
        assertThrows(try OPTModel.load(directory: missing), .missingDirectory(path: missing), "missing dir")
        XCTAssertEqual(EngineError.notADirectory(path: file).description, "\(file) is a file, expected a directory")

        let dir = path("model")
        try FileManager.default.createDirectory(atPath: dir + "/config.json", withIntermediateDirectories: true)
        assertThrows(try OPTConfig.load(directory: dir), .notAFile(path: dir + "/config.json"), "config is a dir")

        // A FIFO where the weights belong is refused at once (opening it blocking would hang the loader).
        XCTAssertEqual(mkfifo(dir + "/model.safetensors", 0o600), 0)
        assertThrows(try CheckpointReader.load(directory: dir), .notAFile(path: dir + "/model.safetensors"), "fifo")
        XCTAssertEqual(mkfifo(dir + "/vocab.json", 0o600), 0)
        try "#version: 0.2\n".write(toFile: dir + "/merges.txt", atomically: true, encoding: .utf8)
        assertThrows(try BPETokenizer.load(directory: dir), .notAFile(path: dir + "/vocab.json"), "fifo vocab")

        // A dangling symlink is a missing file, named.
        let dangling = path("dangling")
        try FileManager.default.createDirectory(atPath: dangling, withIntermediateDirectories: true)
        try FileManager.default.createSymbolicLink(
            atPath: dangling + "/model.safetensors", withDestinationPath: "/nonexistent/x")
        assertThrows(
            try CheckpointReader.load(directory: dangling), .missingFile(path: dangling + "/model.safetensors"),
            "dangling")

        // Permission errors (root reads everything, so the mapping of errno is checked directly there).
        XCTAssertEqual(FileAccess.openError(path: "/p", errno: EACCES), .notReadable(path: "/p"))
        XCTAssertEqual(FileAccess.openError(path: "/p", errno: ENOENT), .missingFile(path: "/p"))
        XCTAssertEqual(EngineError.notReadable(path: "/p").description, "/p is not readable (permission denied)")
        if geteuid() != 0 {
            let locked = path("locked")
            try FileManager.default.createDirectory(atPath: locked, withIntermediateDirectories: true)
            try write([1], to: locked + "/config.json")
            chmod(locked + "/config.json", 0)
            assertThrows(
                try OPTConfig.load(directory: locked), .notReadable(path: locked + "/config.json"), "unreadable")
            chmod(locked, 0)
            assertThrows(try OPTModel.load(directory: locked), .notReadable(path: locked), "unreadable dir")
            chmod(locked, 0o700)
        }
    }
}
