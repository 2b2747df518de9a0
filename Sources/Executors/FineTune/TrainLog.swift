// TrainLog: which steps of a fine-tune become muwa.train_log rows, and what a row says. Like Trainer's
// logging: the loss of a row is the mean step loss since the previous row; learning rate and grad norm are
// the row's own step's. Which steps log is a pure function of the step number (multiples of log_every or
// eval_every, and the last step), so a resumed run logs exactly the rows an uninterrupted one would, and
// each row's window is read from the trainer's history (restored with the checkpoint).
import LoRAOps
import Storage

struct TrainLog {
    let logEvery: Int
    let evalEvery: Int
    let maxSteps: Int

    func isEventStep(_ step: Int) -> Bool {
        step % logEvery == 0 || step % evalEvery == 0 || step == maxSteps
    }

    func isEvalStep(_ step: Int) -> Bool {
        step % evalEvery == 0 || step == maxSteps
    }

    /// The event step before `step` (0 when none).
    func previousEventStep(before step: Int) -> Int {
        var s = step - 1
        while s > 0, !isEventStep(s) { s -= 1 }
        return max(s, 0)
    }

    /// The steps since the previous event step, up to and including `step`.
    func window(history: [StepReport], step: Int) -> ArraySlice<StepReport> {
        let from = previousEventStep(before: step)
        let reports = history.filter { $0.step > from && $0.step <= step }
        return reports[...]
    }

    /// The mean loss of the last window (the adapter's "final loss").
    func lastLoss(history: [StepReport]) -> Double {
        guard let last = history.last else { return .nan }
        let window = self.window(history: history, step: last.step)
        return window.isEmpty ? last.loss : window.reduce(0) { $0 + $1.loss } / Double(window.count)
    }

    /// The muwa.job_events object for the row of `step`.
    func event(history: [StepReport], step: Int, epoch: Double, evalLoss: Double?) -> JSONValue {
        let window = self.window(history: history, step: step)
        let loss = window.isEmpty ? .nan : window.reduce(0) { $0 + $1.loss } / Double(window.count)
        let seconds = window.reduce(0) { $0 + $1.seconds }
        let tokens = window.reduce(0) { $0 + $1.tokens }
        let elapsed = history.filter { $0.step <= step }.reduce(0) { $0 + $1.seconds }
        let current = window.last
        var row: [String: JSONValue] = [
            "type": .string("train_step"),
            "step": .number(Double(step)),
            "epoch": .number((epoch * 10_000).rounded() / 10_000),
            "loss": Self.number(loss),
            "learning_rate": Self.number(current?.learningRate ?? .nan),
            "grad_norm": Self.number(current?.gradNorm ?? .nan),
            "tokens_per_second": Self.number(seconds > 0 ? Double(tokens) / seconds : .nan),
            "elapsed_seconds": Self.number(elapsed),
        ]
        if let evalLoss { row["eval_loss"] = Self.number(evalLoss) }
        return .object(row)
    }

    /// JSON has no NaN or infinity: those become null.
    static func number(_ value: Double) -> JSONValue {
        value.isFinite ? .number(value) : .null
    }
}
