// HubCache: Hugging Face hub ids ("facebook/opt-125m", "theSLWayne/Muwa-1.3b@main", "org/name@<commit>")
// resolved through the local hub cache, offline, the way huggingface_hub lays it out:
//
//   <cache>/models--facebook--opt-125m/
//       refs/main                     the commit hash a branch or tag points at
//       snapshots/<commit>/config.json → ../../blobs/<sha256>   (symlinks into blobs/)
//       blobs/<sha256>
//
// <cache> is HF_HUB_CACHE, else HF_HOME/hub, else XDG_CACHE_HOME/huggingface/hub, else
// ~/.cache/huggingface/hub — huggingface_hub's own order. Nothing is downloaded: a repository that is not
// cached is an error naming the directory searched and the command that downloads it.
import Foundation

/// A model or adapter repository on the hub, with an optional revision (branch, tag or commit).
public struct HubReference: Sendable, Equatable, CustomStringConvertible {
    public let repository: String
    public let revision: String?

    public var description: String { revision.map { "\(repository)@\($0)" } ?? repository }

    /// Parses "owner/name" or "owner/name@revision"; nil for anything else (a path, a bare name).
    public init?(_ value: String) {
        let parts = value.split(separator: "@", maxSplits: 1, omittingEmptySubsequences: false)
        let repository = String(parts[0])
        let names = repository.split(separator: "/", omittingEmptySubsequences: false)
        guard names.count == 2, names.allSatisfy(Self.isValidName) else { return nil }
        if parts.count == 2 {
            let revision = String(parts[1])
            guard Self.isValidRevision(revision) else { return nil }
            self.revision = revision
        } else {
            self.revision = nil
        }
        self.repository = repository
    }

    /// The hub's rule for owner and repository names: letters, digits, '-', '_', '.', not starting or
    /// ending with '-' or '.', no '--' or '..', at most 96 characters.
    static func isValidName(_ name: Substring) -> Bool {
        guard (1...96).contains(name.count), !name.contains("--"), !name.contains(".."),
            let first = name.first, let last = name.last, !"-.".contains(first), !"-.".contains(last)
        else { return false }
        return name.allSatisfy { $0.isASCII && ($0.isLetter || $0.isNumber || "-_.".contains($0)) }
    }

    /// A branch, tag ("v1.0", "refs/pr/1") or commit; no "..", no leading "/".
    static func isValidRevision(_ revision: String) -> Bool {
        guard (1...255).contains(revision.count), !revision.contains(".."), !revision.hasPrefix("/") else {
            return false
        }
        return revision.allSatisfy { $0.isASCII && ($0.isLetter || $0.isNumber || "-_./".contains($0)) }
    }
}

public enum HubCache {
    /// The hub cache directory for `environment`, in huggingface_hub's order.
    public static func directory(environment: [String: String] = ProcessInfo.processInfo.environment) -> String {
        func set(_ key: String) -> String? { environment[key].flatMap { $0.isEmpty ? nil : $0 } }
        if let cache = set("HF_HUB_CACHE") ?? set("HUGGINGFACE_HUB_CACHE") { return cache }
        if let home = set("HF_HOME") { return home + "/hub" }
        if let xdg = set("XDG_CACHE_HOME") { return xdg + "/huggingface/hub" }
        let home = set("HOME") ?? NSHomeDirectory()
        return home + "/.cache/huggingface/hub"
    }

    /// The snapshot directory of `reference` in the cache (a model or adapter repository).
    public static func snapshot(
        _ reference: HubReference, environment: [String: String] = ProcessInfo.processInfo.environment
    ) throws -> String {
        let cache = directory(environment: environment)
        let folder = cache + "/models--" + reference.repository.replacingOccurrences(of: "/", with: "--")
        let download =
            "huggingface-cli download \(reference.repository)"
            + (reference.revision.map { " --revision \($0)" } ?? "")
        guard isDirectory(folder) else {
            throw EngineError.notCached(
                reference: reference.description, searched: folder,
                hint:
                    "download it where there is network (`\(download)`) and copy \(folder) here, or set HF_HUB_CACHE / HF_HOME"
            )
        }
        let revision = reference.revision ?? "main"
        let commit: String
        if revision.count == 40, revision.allSatisfy(\.isHexDigit) {
            commit = revision
        } else {
            let ref = folder + "/refs/" + revision
            guard let data = FileManager.default.contents(atPath: ref), data.count <= 256,
                let text = String(data: data, encoding: .utf8)?.trimmingCharacters(in: .whitespacesAndNewlines),
                text.count == 40, text.allSatisfy(\.isHexDigit)
            else {
                let known = refs(folder).joined(separator: ", ")
                throw EngineError.notCached(
                    reference: reference.description, searched: ref,
                    hint: "revision \"\(revision)\" is not in the cache" + (known.isEmpty ? "" : " (cached: \(known))")
                        + "; `\(download)`")
            }
            commit = text
        }
        let snapshot = folder + "/snapshots/" + commit
        guard isDirectory(snapshot) else {
            throw EngineError.notCached(
                reference: reference.description, searched: snapshot,
                hint: "the snapshot \(commit) is not in the cache; `\(download)`")
        }
        return snapshot
    }

    /// `value` as a directory: itself when it is one, else the cached snapshot when it is a hub id.
    /// Values that are neither come back unchanged, for the caller's own "missing" message.
    public static func resolveDirectory(
        _ value: String, environment: [String: String] = ProcessInfo.processInfo.environment
    ) throws -> String {
        if isDirectory(value) { return value }
        guard let reference = HubReference(value) else { return value }
        return try snapshot(reference, environment: environment)
    }

    static func refs(_ folder: String) -> [String] {
        guard let enumerator = FileManager.default.enumerator(atPath: folder + "/refs") else { return [] }
        var names: [String] = []
        while let name = enumerator.nextObject() as? String, names.count < 20 {
            if !isDirectory(folder + "/refs/" + name) { names.append(name) }
        }
        return names.sorted()
    }

    static func isDirectory(_ path: String) -> Bool {
        var isDirectory: ObjCBool = false
        return FileManager.default.fileExists(atPath: path, isDirectory: &isDirectory) && isDirectory.boolValue
    }
}
