// GenerateTemplate: how a generate job turns each prompt (and its optional input) into the text the model
// sees. `raw` (the default) is the prompt itself; `alpaca` is the Alpaca template the Muwa notebook used
// (PromptTemplate.alpaca, word for word; its input form when an input is given and not empty); a custom
// template is an object in alpaca-lora's template-file format:
//
//   "template": "alpaca"
//   "template": {"prompt_input": "… {instruction} … {input} …", "prompt_no_input": "… {instruction} …"}
//
// Placeholders are filled once (text inside an instruction is never read as a placeholder). A custom
// template's "description" and "response_split" keys are accepted, so a template file can be pasted as it is;
// they change nothing (outputs hold only the generated continuation).
import Evaluation
import JobQueue
import Storage

enum GenerateTemplate: Equatable {
    case raw
    case alpaca
    /// `withInput` is empty when the template has no input form.
    case custom(PromptTemplate)

    static let customFields: Set<String> = ["prompt_input", "prompt_no_input", "description", "response_split"]

    /// Reads the payload's `template` (absent or null: raw).
    init(_ value: JSONValue?, reader: PayloadReader) throws {
        guard let value, value != .null else { self = .raw; return }
        let expected =
            "template must be \"raw\", \"alpaca\" or an object {\"prompt_input\": \"…{instruction}…{input}…\", "
            + "\"prompt_no_input\": \"…{instruction}…\"}"
        if let name = value.stringValue {
            switch name {
            case "raw": self = .raw
            case "alpaca": self = .alpaca
            default: throw reader.failure("\(expected), got \"\(name)\"")
            }
            return
        }
        guard let object = value.objectValue else { throw reader.failure("\(expected), got \(value.typeName)") }
        let unknown = object.keys.filter { !Self.customFields.contains($0) }.sorted()
        guard unknown.isEmpty else {
            throw reader.failure(
                "template has unknown field\(unknown.count > 1 ? "s" : "") "
                    + unknown.map { "\"\($0)\"" }.joined(separator: ", ") + "; allowed: "
                    + Self.customFields.sorted().joined(separator: ", "))
        }
        for key in Self.customFields.sorted() {
            if let v = object[key], v != .null, v.stringValue == nil {
                throw reader.failure("template.\(key) must be a string, got \(v.typeName)")
            }
        }
        guard let noInput = object["prompt_no_input"]?.stringValue else {
            throw reader.failure(
                "template.prompt_no_input is required: the template for prompts without an input, "
                    + "with {instruction} where the prompt goes")
        }
        guard noInput.contains("{instruction}") else {
            throw reader.failure("template.prompt_no_input must contain {instruction} (where the prompt goes)")
        }
        let withInput = object["prompt_input"]?.stringValue ?? ""
        if object["prompt_input"]?.stringValue != nil {
            for placeholder in ["{instruction}", "{input}"] where !withInput.contains(placeholder) {
                throw reader.failure("template.prompt_input must contain \(placeholder)")
            }
        }
        self = .custom(PromptTemplate(withInput: withInput, withoutInput: noInput, responseMarker: ""))
    }

    /// True when the template can take an input (a raw prompt cannot; a custom one needs prompt_input).
    var acceptsInput: Bool {
        switch self {
        case .raw: return false
        case .alpaca: return true
        case .custom(let t): return !t.withInput.isEmpty
        }
    }

    var name: String {
        switch self {
        case .raw: return "raw"
        case .alpaca: return "alpaca"
        case .custom: return "custom"
        }
    }

    /// The text the model sees for `prompt` (the instruction) and `input`.
    func render(prompt: String, input: String?) -> String {
        switch self {
        case .raw: return prompt
        case .alpaca: return PromptTemplate.alpaca.prompt(instruction: prompt, input: input)
        case .custom(let t): return t.prompt(instruction: prompt, input: input)
        }
    }
}
