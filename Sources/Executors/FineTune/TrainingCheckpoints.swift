// TrainingCheckpoints: a fine-tune job's checkpoints in its work directory, one directory per saved step:
//
//   <state>/jobs/<id>/checkpoints/step-00000150/   adapter + optimizer + trainer state (LoRATrainer's format)
//
// A checkpoint is written into a ".partial" sibling and renamed into place, so a crash mid-write (kill -9,
// power loss) leaves the previous checkpoints intact and no half-written one under a real name. The two
// newest are kept. Resuming takes the newest that loads; one that does not (a disk that lied) is skipped
// with a warning, falling back to the one before it.
import Foundation
import LoRAOps
import Logging
import OPTEngine

struct TrainingCheckpoints {
    let root: String
    static let keep = 2

    init(workDirectory: String) {
        root = workDirectory + "/checkpoints"
    }

    /// Saved checkpoints, newest first: (step, directory).
    func saved() -> [(step: Int, directory: String)] {
        let names = (try? FileManager.default.contentsOfDirectory(atPath: root)) ?? []
        return names.compactMap { name -> (Int, String)? in
            guard name.hasPrefix("step-"), !name.hasSuffix(".partial"), let step = Int(name.dropFirst(5)) else { return nil }
            let directory = root + "/" + name
            guard FileManager.default.fileExists(atPath: directory + "/trainer_state.json") else { return nil }
            return (step, directory)
        }.sorted { $0.0 > $1.0 }
    }

    /// Writes `trainer`'s state as the checkpoint of its current step and prunes old ones.
    @discardableResult
    func save(_ trainer: LoRATrainer) throws -> String {
        let fm = FileManager.default
        try fm.createDirectory(atPath: root, withIntermediateDirectories: true)
        let name = String(format: "step-%08d", trainer.step)
        let final = root + "/" + name
        let partial = final + ".partial"
        try? fm.removeItem(atPath: partial)
        try fm.createDirectory(atPath: partial, withIntermediateDirectories: true)
        try trainer.saveCheckpoint(directory: partial)
        try? fm.removeItem(atPath: final)
        try fm.moveItem(atPath: partial, toPath: final)
        for old in saved().dropFirst(Self.keep) {
            try? fm.removeItem(atPath: old.directory)
        }
        return final
    }

    /// A trainer continuing from the newest checkpoint that loads, or nil when there is none.
    func resume(model: OPTModel, examples: [TrainingExample], logger: Logger) -> (LoRATrainer, String)? {
        for checkpoint in saved() {
            do {
                return (try LoRATrainer.resume(directory: checkpoint.directory, model: model, examples: examples),
                        checkpoint.directory)
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
