// muwad run: one job without a database. The same executor the daemon would use runs the payload in this
// process and the outcome is printed as JSON on stdout:
//
//   muwad run --kind generate --payload '{"model": "Tests/Fixtures/models/pre-ln-f32", "prompt": "Hello"}'
//   {"kind": "generate", "status": "succeeded", "result": {…}, "outputs": [{"type": "generation", …}], "events": []}
//
// Events (training-log rows) also stream to stderr as they happen, one JSON object per line. Models and
// adapters given by name are looked up in the state directory (--state-dir, MUWA_STATE_DIR, else
// ./.muwa-local/state), where fine-tune jobs also leave their adapters. The first SIGINT/SIGTERM asks the job
// to stop as a shutdown would (a fine-tune checkpoints; run the same command with the same --job-id to
// resume); a second one exits at once. Exit status: 0 succeeded, 1 failed, 3 stopped.
import ArgumentParser
import Executors
import Foundation
import JobQueue
import Logging
import OPTEngine
import Storage

struct RunCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "run",
        abstract: "Run one job's payload in this process, without a database, and print the outcome as JSON.")

    @Option(name: .long, help: "The job kind: generate, finetune, evaluate or ping.")
    var kind: String

    @Option(name: .long, help: "The payload: a JSON object, or @FILE to read it from a file.")
    var payload: String

    @Option(
        name: .customLong("state-dir"),
        help: "Where models/, adapters/ and jobs/ are (default: MUWA_STATE_DIR or ./.muwa-local/state).")
    var stateDirectory: String?

    @Option(
        name: .customLong("job-id"),
        help: "The job id to run as: its work directory (checkpoints) is jobs/ID under the state directory.")
    var jobID: Int64 = 0

    @Option(name: .long, help: "Log level: trace, debug, info, notice, warning, error.")
    var logLevel: String = "notice"

    @Option(name: .long, help: "Log lines as text, or json (one object per line; env MUWA_LOG_FORMAT).")
    var logFormat: String?

    @Option(name: .customLong("memory-limit"), help: MemoryLimitSetting.help)
    var memoryLimit: String?

    func run() async throws {
        let level = Logger.Level(rawValue: logLevel) ?? .notice
        let source = try SettingsSource(envFile: nil)
        let formatName = source.string(logFormat, env: "MUWA_LOG_FORMAT", default: "text")
        guard let format = LineLogHandler.Format(rawValue: formatName.lowercased()) else {
            throw ValidationError("log format must be text or json, got \"\(formatName)\"")
        }
        LineLogHandler.bootstrap(level: level, format: format)
        let logger = Logger(label: "muwad.run")
        let state = ServeSettings.stateDirectory(flag: stateDirectory, source: source)
        // A user's own command: any path, unless MUWA_MODEL_ROOTS / MUWA_DATA_ROOTS say otherwise.
        let roots = ServeSettings.accessRoots(models: nil, data: nil, source: source, fallback: nil)
        let maxPromptBytes = try source.int(
            nil, env: "MUWA_MAX_PROMPT_BYTES", default: ExecutorEnvironment.defaultMaxPromptBytes)
        let memory = try MemoryLimitSetting.resolve(flag: memoryLimit, setting: source.value("MUWA_MEMORY_LIMIT"))
        let registry = StandardExecutors.registry(
            environment: ExecutorEnvironment(
                stateDirectory: state, roots: roots, maxPromptBytes: maxPromptBytes, memoryBudget: memory.budget,
                engineDefaults: try ServeSettings.engineOptions(source)))
        guard let executor = registry.executor(for: kind) else {
            throw ValidationError(
                "unknown kind \"\(kind)\"; this muwad runs: \(registry.kinds.joined(separator: ", "))")
        }
        let payloadValue = try readPayload()

        let job = ClaimedJob(
            lease: JobLease(jobID: jobID, workerID: "muwad-run:\(getpid())", attempt: 1), kind: kind,
            payload: payloadValue)
        let context = JobContext(job: job, stateDirectory: state, logger: logger)
        let signals = SignalWatcher()
        let signalTask = Task {
            var count = 0
            for await signal in signals.signals {
                count += 1
                if count == 1 {
                    logger.notice("\(SignalWatcher.name(signal)) received: stopping the job at its next safe point")
                    context.requestStop(.shuttingDown)
                } else {
                    Foundation.exit(128 + signal)
                }
            }
        }
        let events = EventPrinter()
        let eventTask = Task {
            while !Task.isCancelled {
                try? await Task.sleep(for: .milliseconds(200))
                events.print(context.takeEvents())
                if let line = context.progressLine() { context.logger.notice("\(line)") }
            }
        }

        var report: [String: JSONValue] = ["kind": .string(kind)]
        let exitCode: Int32
        do {
            // On JobThreads, as in the daemon: the cooperative pool stays free for signals and progress lines.
            let outcome = try await Task(executorPreference: JobThreads.shared) {
                try await executor.execute(job, context: context)
            }.value
            switch outcome {
            case .succeeded(let result, let outputs):
                report["status"] = "succeeded"
                report["result"] = result ?? .null
                report["outputs"] = .array(outputs)
                exitCode = 0
            case .failed(let failure):
                report["status"] = "failed"
                report["error"] = .string(failure.message)
                exitCode = 1
            case .stopped(let partial, let outputs, let checkpoint):
                report["status"] = "stopped"
                report["result"] = partial ?? .null
                report["outputs"] = .array(outputs)
                report["checkpoint"] = checkpoint ?? .null
                exitCode = 3
            }
        } catch {
            report["status"] = "failed"
            report["error"] = .string((error as? JobFailure)?.message ?? "\(error)")
            exitCode = 1
        }
        eventTask.cancel()
        signalTask.cancel()
        events.print(context.takeEvents())
        report["events"] = .array(events.all)
        print(JSONValue.object(report).jsonText)
        if exitCode != 0 { throw ExitCode(exitCode) }
    }

    private func readPayload() throws -> JSONValue {
        var text = payload
        if text.hasPrefix("@") {
            let path = String(text.dropFirst())
            guard let data = FileManager.default.contents(atPath: path) else {
                throw ValidationError("cannot read the payload file \(path)")
            }
            text = String(decoding: data, as: UTF8.self)
        }
        do {
            return try JSONValue(parsing: text)
        } catch {
            throw ValidationError("the payload is not valid JSON: \(error)")
        }
    }
}

/// Prints events to stderr as JSON lines and keeps them for the final report.
private final class EventPrinter: @unchecked Sendable {
    private let lock = NSLock()
    private var events: [JSONValue] = []

    func print(_ batch: [JSONValue]) {
        guard !batch.isEmpty else { return }
        lock.withLock {
            for event in batch {
                FileHandle.standardError.write(Data((event.jsonText + "\n").utf8))
            }
            events.append(contentsOf: batch)
        }
    }

    var all: [JSONValue] { lock.withLock { events } }
}
