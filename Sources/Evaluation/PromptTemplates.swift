// PromptTemplates: the Alpaca templates of the Muwa evaluation notebook, word for word, and the marker
// each one's response is split at. SQuAD uses "### Short Answer:" in place of "### Response:".
import Foundation

/// A prompt template: with-input and no-input forms and the marker that precedes the response.
public struct PromptTemplate: Sendable, Equatable {
    public var withInput: String
    public var withoutInput: String
    /// The text the decoded output is split at; the response is the piece after its first occurrence.
    public var responseMarker: String

    public init(withInput: String, withoutInput: String, responseMarker: String) {
        self.withInput = withInput
        self.withoutInput = withoutInput
        self.responseMarker = responseMarker
    }

    /// The notebook's `Prompter.generate_prompt`: the with-input form when `input` is non-empty.
    public func prompt(instruction: String, input: String? = nil) -> String {
        if let input, !input.isEmpty {
            return fill(withInput, [("{instruction}", instruction), ("{input}", input)])
        }
        return fill(withoutInput, [("{instruction}", instruction)])
    }

    /// The notebook's `Prompter.get_response`: `output.split(marker)[1].strip()`, i.e. the text between
    /// the first and the second marker (or the end), without surrounding whitespace (Python's). Nil when
    /// the marker does not occur (the notebook raised IndexError).
    public func response(in output: String) -> String? {
        let pieces = PythonText.split(PythonText.scalars(output), separator: PythonText.scalars(responseMarker))
        guard pieces.count > 1 else { return nil }
        return PythonText.string(PythonText.strip(pieces[1]))
    }

    /// str.format with the values inserted once (text inside a value is never re-read as a placeholder).
    private func fill(_ template: String, _ values: [(String, String)]) -> String {
        var out = ""
        var rest = Substring(template)
        while let open = rest.firstIndex(of: "{") {
            out += rest[..<open]
            let tail = rest[open...]
            if let (key, value) = values.first(where: { tail.hasPrefix($0.0) }) {
                out += value
                rest = tail.dropFirst(key.count)
            } else {
                out += "{"
                rest = tail.dropFirst()
            }
        }
        return out + rest
    }

    /// Alpaca's template (alpaca.json, as the notebook has it).
    public static let alpaca = PromptTemplate(
        withInput: "Below is an instruction that describes a task, paired with an input that provides further "
            + "context. Write a response that appropriately completes the request.\n\n### Instruction:\n"
            + "{instruction}\n\n### Input:\n{input}\n\n### Response:\n",
        withoutInput: "Below is an instruction that describes a task. Write a response that appropriately "
            + "completes the request.\n\n### Instruction:\n{instruction}\n\n### Response:\n",
        responseMarker: "### Response:")

    /// The notebook's squad.json: Alpaca with "### Short Answer:".
    public static let squad = PromptTemplate(
        withInput: alpaca.withInput.replacingOccurrences(of: "### Response:", with: "### Short Answer:"),
        withoutInput: alpaca.withoutInput.replacingOccurrences(of: "### Response:", with: "### Short Answer:"),
        responseMarker: "### Short Answer:")

    /// The notebook's piqa.json: the same text as Alpaca.
    public static let piqa = alpaca
}

/// The instructions the notebook built for each task.
public enum TaskPrompts {
    /// SQuAD: the question as the instruction, the context as the input, the "### Short Answer:" template.
    public static func squad(question: String, context: String) -> String {
        PromptTemplate.squad.prompt(
            instruction: "Generate a very short, precise answer to this Question:\n" + question, input: context)
    }

    /// PIQA: the task and both solutions in the instruction, no input.
    public static func piqa(goal: String, sol1: String, sol2: String) -> String {
        let instruction =
            "You will be presented with a task and two possible solutions. Your goal is to select "
            + "the solution that best achieves the given task.\nTask: \(goal)\nSolutions:\n  1. \(sol1)\n"
            + "  2. \(sol2)\n  \nPlease respond with either \"1\" or \"2\" to indicate the most appropriate solution."
        return PromptTemplate.piqa.prompt(instruction: instruction)
    }

    /// lm-evaluation-harness's PIQA request: context and the continuation for one solution.
    public static func piqaLoglikelihood(goal: String, solution: String) -> (context: String, continuation: String) {
        ("Question: \(goal)\nAnswer:", " \(solution)")
    }
}
