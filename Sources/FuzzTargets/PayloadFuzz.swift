// PayloadFuzz: a job payload as the queue hands it over — jsonb text parsed into Storage's JSONValue —
// then checked by every kind's request parser. JSONValue's own encoder must give text that parses
// back to the same text (it is what results and events are stored as).
//
//   payload:  the payload's JSON text
import Executors
import Foundation
import Storage

enum PayloadFuzz {
    static func run(_ bytes: [UInt8]) {
        guard let value = attempt("JSONDecoder", { try JSONDecoder().decode(JSONValue.self, from: Data(bytes)) }) else {
            _ = attempt("JSONValue", { try JSONValue(parsing: String(decoding: bytes, as: UTF8.self)) })
            return
        }
        let text = value.jsonText
        guard let again = attempt("JSONValue", { try JSONValue(parsing: text) }) else {
            preconditionFailure("JSONValue.jsonText wrote text that does not parse")
        }
        precondition(again.jsonText == text, "JSONValue.jsonText is not stable under a round trip")
        for kind in PayloadValidation.kinds {
            _ = attempt("\(kind) payload", { try PayloadValidation.validate(kind: kind, payload: value) })
        }
    }
}
