// StandardExecutors: the registry muwad serves by default. Generate, finetune and evaluate executors are
// added here as they exist; a kind without an executor is simply not claimed by this daemon.
import JobQueue

public enum StandardExecutors {
    /// Every executor this build of muwad has.
    public static func registry() -> ExecutorRegistry {
        ExecutorRegistry([PingExecutor(), GenerateJobExecutor()])
    }
}
