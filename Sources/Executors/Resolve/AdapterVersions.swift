// AdapterVersions: adapter names with versions. A fine-tune never overwrites an adapter: each run of a job
// with `output` NAME writes a new version directory, and payloads name either the newest or a fixed one:
//
//   "muwa"     the newest version (muwa.adapters; on disk the highest NAME@N)
//   "muwa@2"   version 2 for good (muwa.adapter_versions; on disk <state>/adapters/muwa@2)
//
// On disk (<state>/adapters/): NAME@N directories, each complete before it appears (written under a
// hidden ".partial" name and renamed), never replaced. A plain NAME directory from before versions existed
// counts as version 1 (migration 0007 registers such adapters as version 1 too).
import Foundation

/// What a payload's adapter name asks for: a name, and a version or the newest.
struct AdapterReference: Equatable {
    let name: String
    /// nil: the newest.
    let version: Int?

    /// "muwa" → (muwa, newest); "muwa@3" → (muwa, 3). Throws a sentence when the version is not 1…10⁹.
    init(_ value: String) throws {
        guard let at = value.lastIndex(of: "@") else {
            name = value
            version = nil
            return
        }
        let text = value[value.index(after: at)...]
        guard !text.isEmpty, text.count <= 9, text.allSatisfy({ $0.isASCII && $0.isNumber }), let number = Int(text),
            number >= 1
        else {
            throw AdapterReferenceError(
                description: "\"\(value)\": the version after '@' must be a whole number from 1 (NAME@N)")
        }
        name = String(value[..<at])
        version = number
    }
}

struct AdapterReferenceError: Error, CustomStringConvertible {
    let description: String
}

/// The version directories of adapters in one folder (the state directory's adapters/).
enum AdapterVersions {
    /// "muwa@3"
    static func directoryName(_ name: String, version: Int) -> String { "\(name)@\(version)" }

    /// Versions of `name` on disk, ascending: NAME@N directories, and a legacy NAME directory as version 1
    /// when there is no NAME@1.
    static func onDisk(_ name: String, in folder: String) -> [(version: Int, directory: String)] {
        let prefix = name + "@"
        var found: [Int: String] = [:]
        for entry in (try? FileManager.default.contentsOfDirectory(atPath: folder)) ?? [] where entry.hasPrefix(prefix)
        {
            let text = entry.dropFirst(prefix.count)
            guard !text.isEmpty, text.count <= 9, text.allSatisfy({ $0.isASCII && $0.isNumber }),
                let version = Int(text),
                version >= 1, Locations.isDirectory(folder + "/" + entry)
            else { continue }
            found[version] = folder + "/" + entry
        }
        if found[1] == nil, Locations.isDirectory(folder + "/" + name) {
            found[1] = folder + "/" + name
        }
        return found.sorted { $0.key < $1.key }.map { ($0.key, $0.value) }
    }

    /// The directory of version `version` of `name` (nil: the newest), if it is on disk.
    static func directory(_ name: String, version: Int?, in folder: String) -> String? {
        let versions = onDisk(name, in: folder)
        guard let version else { return versions.last?.directory }
        return versions.first { $0.version == version }?.directory
    }

    /// Renames the finished `partial` directory to the first free NAME@N with N ≥ `atLeast`, and returns
    /// (N, the directory). rename(2) never replaces a non-empty directory, so two jobs finishing at once
    /// get different versions and neither overwrites the other.
    static func publish(partial: String, name: String, atLeast: Int, in folder: String) throws
        -> (version: Int, directory: String)
    {
        var version = max(1, atLeast, (onDisk(name, in: folder).last?.version ?? 0) + 1)
        for _ in 0..<1000 {
            let target = folder + "/" + directoryName(name, version: version)
            if !FileManager.default.fileExists(atPath: target), rename(partial, target) == 0 {
                return (version, target)
            }
            version += 1
        }
        throw AdapterReferenceError(description: "no free version directory for adapter \(name) in \(folder)")
    }
}
