// SafetensorsHeader: the JSON header of a safetensors file, decoded with JSONDecoder into plain
// structs. JSONSerialization builds an object per value (a 100 MB header peaked at 5.6 GB); the
// decoder's compact map of the text plus these structs stay within a few times the header's size.
// Only the shape of the JSON is read here; SafetensorsFile checks the values.
import Foundation

/// `{name: {"dtype", "shape", "data_offsets"}, "__metadata__": {str: str}}`, leniently decoded: a
/// field of the wrong type comes back nil so the caller can name the tensor and field in its error.
struct SafetensorsHeader: Decodable {
    /// One tensor's entry; nil fields are absent or of the wrong JSON type.
    struct Entry: Decodable {
        var isObject = true
        var dtype: String?
        var shape: [Int]?
        var dataOffsets: [Int]?

        init(from decoder: Decoder) throws {
            guard let c = try? decoder.container(keyedBy: Key.self) else {
                isObject = false
                return
            }
            dtype = try? c.decode(String.self, forKey: Key("dtype"))
            shape = try? c.decode([Int].self, forKey: Key("shape"))
            dataOffsets = try? c.decode([Int].self, forKey: Key("data_offsets"))
        }
    }

    /// A JSON object key, whatever its text.
    struct Key: CodingKey {
        var stringValue: String
        var intValue: Int? { nil }
        init(_ string: String) { stringValue = string }
        init?(stringValue: String) { self.stringValue = stringValue }
        init?(intValue: Int) { nil }
    }

    /// Tensor entries in the order the decoder lists them.
    var entries: [(name: String, entry: Entry)] = []
    /// `__metadata__` (empty when absent); nil while decoding means it was not an object of strings.
    var metadata: [String: String] = [:]
    private var metadataIsValid = true

    init(from decoder: Decoder) throws {
        let c = try decoder.container(keyedBy: Key.self)
        for key in c.allKeys {
            if key.stringValue == "__metadata__" {
                if let m = try? c.decode([String: String].self, forKey: key) {
                    metadata = m
                } else {
                    metadataIsValid = false
                }
            } else {
                entries.append((key.stringValue, try c.decode(Entry.self, forKey: key)))
            }
        }
    }

    /// Decodes `data` (the header bytes). Throws ``EngineError/corruptFile(path:reason:)`` naming
    /// `path` when the text is not a JSON object or `__metadata__` is not an object of strings; the
    /// decoder's own messages (which may quote the text) are not passed on.
    static func parse(_ data: Data, path: String) throws -> SafetensorsHeader {
        let header: SafetensorsHeader
        do {
            header = try JSONDecoder().decode(SafetensorsHeader.self, from: data)
        } catch DecodingError.typeMismatch {
            throw EngineError.corruptFile(path: path, reason: "header is not a JSON object")
        } catch {
            throw EngineError.corruptFile(path: path, reason: "header is not valid JSON")
        }
        guard header.metadataIsValid else {
            throw EngineError.corruptFile(path: path, reason: "__metadata__ is not an object of strings")
        }
        return header
    }
}
