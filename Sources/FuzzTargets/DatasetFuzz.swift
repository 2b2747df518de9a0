// DatasetFuzz: the dataset readers of fine-tune and evaluate jobs, each on the file name it dispatches
// on, and the text functions the evaluation applies to what the files hold (SQuAD normalisation and
// scores, PIQA's answer parsing, the prompt templates).
//
//   dataset:  selector (value % 6 picks the reader; for dolly, (value / 6) % 3 the template), then:
//     0  dolly JSONL (train.jsonl), tokenized with a byte-level tokenizer; max_length 16 + (value / 18) * 32
//     1  SQuAD JSON (dev-v1.1.json)         2  SQuAD JSONL (validation.jsonl)
//     3  PIQA: valid.jsonl [SEP valid-labels.lst]
//     4  wikitext raw (wiki.test.raw)       5  wikitext JSONL (test.jsonl)
import Evaluation
import Executors
import Foundation
import LoRAOps
import OPTEngine

enum DatasetFuzz {
    /// Text handed to the quadratic metrics (Levenshtein) is cut to this many characters: predictions
    /// are bounded by a job's token limit, and the fuzzer should spend its time on the readers.
    static let metricTextLimit = 512

    static func run(_ input: FuzzInput) {
        let (selector, rest) = input.selectorAndRest
        let parts = FuzzInput.split(rest)
        switch selector % 6 {
        case 0:
            let dir = ScratchDirectory.reset([("train.jsonl", rest)])
            let template = FineTuneTemplate.allCases[Int(selector / 6) % FineTuneTemplate.allCases.count]
            let maxLength = 16 + Int(selector / 18) * 32
            if let dataset = attempt(
                "InstructionDataset.load",
                {
                    try InstructionDataset.load(
                        path: dir + "/train.jsonl", template: template, tokenizer: ByteTokenizer.shared,
                        maxLength: maxLength,
                        trainOnPrompt: selector & 1 == 1)
                })
            {
                for example in dataset.examples {
                    precondition(example.inputIds.count <= maxLength, "example longer than max_length")
                }
                _ = dataset.split(evalFraction: 0.25, seed: UInt64(selector))
            }
        case 1, 2:
            let name = selector % 6 == 1 ? "dev-v1.1.json" : "validation.jsonl"
            let dir = ScratchDirectory.reset([(name, rest)])
            guard let examples = attempt("SquadDataset.load", { try SquadDataset.load(path: dir + "/" + name) }) else {
                return
            }
            _ = SquadDataset.subset(examples, stride: 3)
            for example in examples.prefix(8) {
                _ = TaskPrompts.squad(question: example.question, context: example.context)
                let prediction = String(example.context.prefix(metricTextLimit))
                let answers = example.answers.map { String($0.prefix(metricTextLimit)) }
                _ = SquadMetric.score(prediction: prediction, answers: answers)
                _ = SquadMetric.muwaScore(prediction: prediction, answers: answers)
                _ = SquadMetric.normalize(example.question)
                _ = PromptTemplate.squad.response(in: prediction)
            }
        case 3:
            let dir = ScratchDirectory.reset([("valid.jsonl", parts[0]), ("valid-labels.lst", parts[part: 1])])
            let paths = parts.count > 1 ? [dir + "/valid.jsonl", dir + "/valid-labels.lst"] : [dir + "/valid.jsonl"]
            guard let examples = attempt("PIQADataset.load", { try PIQADataset.load(paths: paths) }) else { return }
            for example in examples.prefix(8) {
                precondition(example.label == 0 || example.label == 1, "PIQA label \(example.label) accepted")
                _ = TaskPrompts.piqa(goal: example.goal, sol1: example.sol1, sol2: example.sol2)
                _ = TaskPrompts.piqaLoglikelihood(goal: example.goal, solution: example.sol1)
                _ = PIQAParse.choose(
                    prediction: String(example.goal.prefix(metricTextLimit)),
                    sol1: String(example.sol1.prefix(metricTextLimit)),
                    sol2: String(example.sol2.prefix(metricTextLimit)))
            }
        case 4, 5:
            let name = selector % 6 == 4 ? "wiki.test.raw" : "test.jsonl"
            let dir = ScratchDirectory.reset([(name, rest)])
            guard let dataset = attempt("WikitextDataset.load", { try WikitextDataset.load(path: dir + "/" + name) })
            else { return }
            _ = ByteTokenizer.shared.encode(String(dataset.joined.prefix(1 << 16)))
        default:
            break
        }
    }
}
