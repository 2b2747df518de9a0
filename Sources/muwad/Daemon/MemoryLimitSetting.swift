// MemoryLimitSetting: the memory budget of `serve`, `run`, `generate`, `score` and `bench` — the
// --memory-limit flag, else MUWA_MEMORY_LIMIT (environment or env file), else what the cgroup
// (systemd's MemoryMax=) or the machine allows. Models and adapters whose buffers would exceed it are
// refused with an error instead of aborting the process.
import ArgumentParser
import OPTEngine

enum MemoryLimitSetting {
    /// The budget for `flag` (a --memory-limit value) or `setting` (MUWA_MEMORY_LIMIT's value), else
    /// the detected default. A value that is not a size is a ValidationError naming it.
    static func resolve(flag: String?, setting: String?) throws -> (budget: MemoryBudget, source: MemoryBudget.Source) {
        do {
            if let flag { return (try MemoryBudget.parse(flag, setting: "--memory-limit"), .setting) }
            var environment: [String: String] = [:]
            if let setting { environment["MUWA_MEMORY_LIMIT"] = setting }
            return try MemoryBudget.detectFromSystem(environment: environment)
        } catch let error as EngineError {
            throw ValidationError(error.description)
        }
    }

    static let help: ArgumentHelp = ArgumentHelp(
        "Memory models and adapters may use, e.g. 8GiB, 512MiB or bytes (env MUWA_MEMORY_LIMIT; default: the "
            + "cgroup's MemoryMax, else physical memory).", valueName: "size")
}
