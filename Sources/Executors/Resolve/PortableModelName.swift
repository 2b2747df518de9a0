// PortableModelName: what a saved adapter's base_model_name_or_path should say so that peft finds the base
// model on another machine: the hub id when the model came from the Hugging Face cache (named by id, or by a
// path into models--org--name/snapshots/), else config.json's own _name_or_path when that is a hub id, else
// the name the payload used.
import Foundation
import OPTEngine

enum PortableModelName {
    static func of(_ location: ModelLocation) -> String {
        if !FileManager.default.fileExists(atPath: location.name), let reference = HubReference(location.name) {
            return reference.repository
        }
        let parts = location.directory.split(separator: "/").map(String.init)
        if let index = parts.firstIndex(where: { $0.hasPrefix("models--") }), index + 1 < parts.count,
            parts[index + 1] == "snapshots"
        {
            let repository = parts[index].dropFirst("models--".count).replacingOccurrences(of: "--", with: "/")
            if HubReference(repository) != nil { return repository }
        }
        if let data = FileManager.default.contents(atPath: location.directory + "/config.json"), data.count < 1 << 20,
            let object = try? JSONSerialization.jsonObject(with: data) as? [String: Any],
            let name = object["_name_or_path"] as? String, HubReference(name) != nil
        {
            return name
        }
        return location.name
    }

    /// Rewrites base_model_name_or_path in `directory`/adapter_config.json to `name`.
    static func write(_ name: String, adapterDirectory directory: String) throws {
        let path = directory + "/adapter_config.json"
        guard let data = FileManager.default.contents(atPath: path),
            var object = try JSONSerialization.jsonObject(with: data) as? [String: Any]
        else { return }
        object["base_model_name_or_path"] = name
        let updated = try JSONSerialization.data(withJSONObject: object, options: [.prettyPrinted, .sortedKeys])
        try updated.write(to: URL(fileURLWithPath: path), options: .atomic)
    }
}
