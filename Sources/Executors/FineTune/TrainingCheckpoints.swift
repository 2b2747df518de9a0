// TrainingCheckpoints: a fine-tune job's checkpoints in its work directory, one directory per saved step:
//
//   <state>/jobs/<id>/checkpoints/step-00000150/   adapter + optimizer + trainer state (LoRATrainer's format)
//                                                  + train_log.json: the training-log rows emitted so far
//
// The rows travel with the checkpoint because a crash can lose the last ones before they reached the
// database; a resumed run records them again (muwa.train_log keeps the newest copy of each step).
// A checkpoint is written into a ".partial" sibling and renamed into place, so a crash mid-write (kill -9,
// power loss) leaves the previous checkpoints intact and no half-written one under a real name. The two
// newest are kept. Resuming takes the newest that loads; one that does not (a disk that lied) is skipped
// with a warning, falling back to the one before it. Only the work directory is read, never a path from the
// job's row, and a checkpoint entry that resolves outside it (a symlink) is not a checkpoint.
//
// checkpoints/settings.json records what the checkpoints were made for (the resolved base model, the dataset
// file's size and time, the template and every training setting). A run whose settings differ refuses to
// touch them: `muwad run` with a reused --job-id must never resume, or delete, someone else's fine-tune.
import Foundation
import JobQueue
import LoRAOps
import Logging
import OPTEngine
import Storage

struct TrainingCheckpoints {
    let root: String
    static let keep = 2
    static let eventsFile = "train_log.json"
    static let settingsFile = "settings.json"

    init(workDirectory: String) {
        root = workDirectory + "/checkpoints"
    }

    /// Saved checkpoints, newest first: (step, directory).
    func saved() -> [(step: Int, directory: String)] {
        let names = (try? FileManager.default.contentsOfDirectory(atPath: root)) ?? []
        return names.compactMap { name -> (Int, String)? in
            guard name.hasPrefix("step-"), !name.hasSuffix(".partial"), let step = Int(name.dropFirst(5)) else {
                return nil
            }
            let directory = root + "/" + name
            guard FileManager.default.fileExists(atPath: directory + "/trainer_state.json"),
                WorkDirectoryConfinement.isInside(directory + "/trainer_state.json", directory: root)
            else { return nil }
            return (step, directory)
        }.sorted { $0.0 > $1.0 }
    }

    /// Claims the checkpoint folder for `settings`: fails when it holds checkpoints made for other settings,
    /// records them otherwise. Checkpoints from before settings were recorded are taken as they are.
    func claim(for settings: JSONValue) throws {
        let path = root + "/" + Self.settingsFile
        if let data = FileManager.default.contents(atPath: path) {
            let recorded = try? JSONValue(parsing: String(decoding: data, as: UTF8.self))
            guard recorded == settings else {
                throw JobFailure.permanent(
                    "\(root) holds the checkpoints of another fine-tune (made with other settings, see \(path)); "
                        + "they were left alone. Run this payload under another job id, or remove that folder to "
                        + "start over")
            }
            return
        }
        try FileManager.default.createDirectory(atPath: root, withIntermediateDirectories: true)
        try Data(settings.jsonText.utf8).write(to: URL(fileURLWithPath: path), options: .atomic)
    }

    /// Writes `trainer`'s state as the checkpoint of its current step and prunes old ones.
    @discardableResult
    func save(_ trainer: LoRATrainer, events: [JSONValue]) throws -> String {
        let fm = FileManager.default
        try fm.createDirectory(atPath: root, withIntermediateDirectories: true)
        let name = String(format: "step-%08d", trainer.step)
        let final = root + "/" + name
        let partial = final + ".partial"
        try? fm.removeItem(atPath: partial)
        try fm.createDirectory(atPath: partial, withIntermediateDirectories: true)
        try trainer.saveCheckpoint(directory: partial)
        try Data(JSONValue.array(events).jsonText.utf8).write(
            to: URL(fileURLWithPath: partial + "/" + Self.eventsFile), options: .atomic)
        try? fm.removeItem(atPath: final)
        try fm.moveItem(atPath: partial, toPath: final)
        for old in saved().dropFirst(Self.keep) {
            try? fm.removeItem(atPath: old.directory)
        }
        return final
    }

    /// A trainer continuing from the newest checkpoint that loads, or nil when there is none.
    func resume(model: OPTModel, examples: [TrainingExample], logger: Logger)
        -> (trainer: LoRATrainer, directory: String, events: [JSONValue])?
    {
        for checkpoint in saved() {
            do {
                let trainer = try LoRATrainer.resume(directory: checkpoint.directory, model: model, examples: examples)
                let data = FileManager.default.contents(atPath: checkpoint.directory + "/" + Self.eventsFile)
                let events =
                    data.flatMap { try? JSONValue(parsing: String(decoding: $0, as: UTF8.self)) }?.arrayValue ?? []
                return (trainer, checkpoint.directory, events)
            } catch {
                logger.warning("cannot resume from \(checkpoint.directory), trying an older checkpoint: \(error)")
            }
        }
        return nil
    }

    func removeAll() {
        try? FileManager.default.removeItem(atPath: root)
    }
}
