// Locations: how payloads name models and adapters. A `model` is a checkpoint directory (a value with a
// "/") or a name under the state directory's models/; an `adapter` is a peft directory (with a "/") or a
// name — NAME for the newest version, NAME@N for version N (AdapterVersions) — looked up in muwa.adapters /
// muwa.adapter_versions when the daemon has a database, else in the state directory's adapters/, where
// fine-tune jobs write them. Fine-tune jobs also leave a muwa_adapter.json beside the
// adapter recording the base model it was trained on, so that an adapter is refused on another model even
// when its shapes happen to fit.
import Foundation
import JobQueue
import LoRAOps
import OPTEngine
import Storage

/// A model named by a payload.
public struct ModelLocation: Sendable, Equatable {
    /// As the payload gave it ("opt-1.3b" or "/srv/models/opt-1.3b").
    public let name: String
    /// The checkpoint directory, standardized.
    public let directory: String
}

/// An adapter named by a payload.
public struct AdapterLocation: Sendable, Equatable {
    public let name: String
    public let directory: String
    /// The base model it was registered with (muwa.adapters or muwa_adapter.json), when known.
    public let baseModel: String?
}

/// What a fine-tune job records beside the adapter it saved.
public struct AdapterProvenance: Codable, Sendable, Equatable {
    public var name: String
    public var baseModel: String
    public var baseModelDirectory: String
    /// The base model's architecture (OPTConfig's shape fields), to refuse other models.
    public var architecture: String
    public var jobID: Int64?
    /// The version this directory holds (NAME@N); nil in adapters saved before versions existed.
    public var version: Int?

    enum CodingKeys: String, CodingKey {
        case name, baseModel = "base_model", baseModelDirectory = "base_model_directory", architecture
        case jobID = "job_id", version
    }

    public static let fileName = "muwa_adapter.json"

    /// The shape of `config` in one line: the fields an adapter's fit depends on.
    public static func architecture(of config: OPTConfig) -> String {
        "opt hidden=\(config.hiddenSize) ffn=\(config.ffnDim) layers=\(config.numHiddenLayers) "
            + "heads=\(config.numAttentionHeads) vocab=\(config.vocabSize) positions=\(config.maxPositionEmbeddings) "
            + "embed=\(config.wordEmbedProjDim) pre_ln=\(config.doLayerNormBefore)"
    }

    static func read(directory: String) -> AdapterProvenance? {
        let path = directory + "/" + fileName
        guard let data = FileManager.default.contents(atPath: path) else { return nil }
        return try? JSONDecoder().decode(AdapterProvenance.self, from: data)
    }

    func write(directory: String) throws {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.prettyPrinted, .sortedKeys]
        try encoder.encode(self).write(to: URL(fileURLWithPath: directory + "/" + Self.fileName), options: .atomic)
    }
}

/// Resolves the names in payloads. `stateDirectory` nil: only explicit paths work.
public struct Locations: Sendable {
    public let stateDirectory: String?
    public let registry: (any AdapterRegistry)?
    /// Where payload paths may point (AccessRoots); the state directory always counts for models.
    public let roots: AccessRoots

    public init(stateDirectory: String?, registry: (any AdapterRegistry)? = nil, roots: AccessRoots = .unrestricted) {
        self.stateDirectory = stateDirectory
        self.registry = registry
        if let stateDirectory, let models = roots.models {
            self.roots = AccessRoots(models: models + [stateDirectory], data: roots.data)
        } else {
            self.roots = roots
        }
    }

    /// A dataset path from a payload, resolved and checked against the data roots. Parquet files (what the
    /// Hugging Face hub serves) are refused with the command that converts them to the JSON Lines muwa reads.
    public func dataPath(_ path: String, field: String, kind: String) throws -> String {
        let real = try roots.resolve(path, use: .data, field: field, kind: kind)
        if let handle = FileHandle(forReadingAtPath: real) {
            defer { try? handle.close() }
            if (try? handle.read(upToCount: 4)) == Data("PAR1".utf8) {
                throw JobFailure.permanent(
                    "invalid \(kind) payload: \(field): \(path) is a Parquet file (as the Hugging Face hub serves "
                        + "datasets); muwad reads the original formats and JSON Lines. Convert it once with "
                        + "`python3 -c \"import pandas as pd; pd.read_parquet('\(path)').to_json('\(path).jsonl', "
                        + "orient='records', lines=True, force_ascii=False)\"` (pip install pandas pyarrow) and point the "
                        + "payload at the .jsonl")
            }
        }
        return real
    }

    public var modelsDirectory: String? { stateDirectory.map { $0 + "/models" } }
    public var adaptersDirectory: String? { stateDirectory.map { $0 + "/adapters" } }

    static func isPath(_ value: String) -> Bool {
        value.contains("/") || value == "." || value == ".."
    }

    /// The checkpoint directory for a payload's model value. Fails with a message naming the field.
    public func model(_ value: String, field: String, kind: String) throws -> ModelLocation {
        let failure = { (message: String) in JobFailure.permanent("invalid \(kind) payload: \(message)") }
        guard !value.isEmpty else {
            throw failure("\(field) must name a checkpoint directory or a model under the state directory, got \"\"")
        }
        let directory: String
        if Self.isPath(value), !FileManager.default.fileExists(atPath: value), HubReference(value) != nil {
            directory = try Self.hubSnapshot(value, field: field, kind: kind)
        } else if Self.isPath(value) {
            directory = value
        } else if let models = modelsDirectory, Self.isDirectory(models + "/" + value) {
            directory = models + "/" + value
        } else if Self.isDirectory(value) {
            directory = value
        } else {
            let known = modelsDirectory.map { Self.listDirectories($0) } ?? []
            let place =
                modelsDirectory.map { "no model called \"\(value)\" in \($0)" }
                ?? "\"\(value)\" is not a directory (no state directory to look names up in)"
            let hint = known.isEmpty ? "" : " (there: \(known.joined(separator: ", ")))"
            throw failure("\(field): \(place)\(hint); give a checkpoint directory path or a model name")
        }
        guard FileManager.default.fileExists(atPath: directory) else {
            throw failure("\(field): the model directory \(directory) does not exist")
        }
        guard Self.isDirectory(directory) else {
            throw failure("\(field): \(directory) is not a directory (give the checkpoint's directory)")
        }
        let real = try roots.resolve(directory, use: .model, field: field, kind: kind)
        guard FileManager.default.fileExists(atPath: real + "/config.json") else {
            throw failure("\(field): \(directory) is not a checkpoint directory (no config.json)")
        }
        return ModelLocation(name: value, directory: real)
    }

    /// The adapter directory for a payload's adapter value.
    public func adapter(_ value: String, field: String, kind: String) async throws -> AdapterLocation {
        let failure = { (message: String) in JobFailure.permanent("invalid \(kind) payload: \(message)") }
        guard !value.isEmpty else { throw failure("\(field) must name an adapter or an adapter directory, got \"\"") }
        if Self.isPath(value) {
            var path = value
            if !FileManager.default.fileExists(atPath: value), HubReference(value) != nil {
                path = try Self.hubSnapshot(value, field: field, kind: kind)
            }
            guard Self.isDirectory(path) else {
                throw failure("\(field): the adapter directory \(value) does not exist")
            }
            let directory = try roots.resolve(path, use: .model, field: field, kind: kind)
            return AdapterLocation(
                name: value, directory: directory,
                baseModel: AdapterProvenance.read(directory: directory)?.baseModel)
        }
        let reference: AdapterReference
        do {
            reference = try AdapterReference(value)
        } catch {
            throw failure("\(field): \(error)")
        }
        if let registry {
            let registered: RegisteredAdapter?
            do {
                if let version = reference.version {
                    registered = try await registry.adapter(named: reference.name, version: version)
                } else {
                    registered = try await registry.adapter(named: reference.name)
                }
            } catch {
                throw JobFailure.retryable("cannot look up adapter \"\(value)\" in muwa.adapters: \(error)")
            }
            if let registered {
                guard Self.isDirectory(registered.path) else {
                    throw failure(
                        "\(field): adapter \"\(value)\" is registered at \(registered.path), which does not exist")
                }
                let directory = try roots.resolve(registered.path, use: .model, field: field, kind: kind)
                return AdapterLocation(name: value, directory: directory, baseModel: registered.baseModel)
            }
        }
        if let adapters = adaptersDirectory,
            let found = AdapterVersions.directory(reference.name, version: reference.version, in: adapters)
        {
            let directory = try roots.resolve(found, use: .model, field: field, kind: kind)
            return AdapterLocation(
                name: value, directory: directory,
                baseModel: AdapterProvenance.read(directory: directory)?.baseModel)
        }
        var places: [String] = []
        if registry != nil { places.append("not registered in muwa.adapters") }
        if let adapters = adaptersDirectory {
            let wanted =
                reference.version.map { AdapterVersions.directoryName(reference.name, version: $0) }
                ?? "\(reference.name)@N"
            places.append("no directory \(adapters)/\(wanted)")
        }
        if places.isEmpty { places.append("no state directory to look names up in") }
        throw failure("\(field): unknown adapter \"\(value)\" (\(places.joined(separator: ", ")))")
    }

    /// The newest version of adapter `name`, from the registry and the state directory (the higher wins),
    /// and the job that made it when known; nil when the name is unknown to both.
    public func newestAdapterVersion(_ name: String) async throws -> (version: Int, jobID: Int64?)? {
        var newest: (version: Int, jobID: Int64?)?
        if let registry, let registered = try await registry.adapter(named: name) {
            newest = (registered.version, registered.jobID)
        }
        if let adapters = adaptersDirectory, let onDisk = AdapterVersions.onDisk(name, in: adapters).last,
            onDisk.version > (newest?.version ?? 0)
        {
            newest = (onDisk.version, AdapterProvenance.read(directory: onDisk.directory)?.jobID)
        }
        return newest
    }

    /// Loads the adapter for `model`, refusing one trained for a different base model.
    public static func loadAdapter(_ location: AdapterLocation, for model: OPTModel, modelName: String, kind: String)
        throws -> LoRAAdapter
    {
        let failure = { (message: String) in JobFailure.permanent("invalid \(kind) payload: \(message)") }
        let provenance = AdapterProvenance.read(directory: location.directory)
        if let provenance, provenance.architecture != AdapterProvenance.architecture(of: model.config) {
            throw failure(
                "adapter \"\(location.name)\" was trained for base model \(provenance.baseModel) "
                    + "(\(provenance.architecture)), not for \(modelName) (\(AdapterProvenance.architecture(of: model.config)))"
            )
        }
        do {
            return try LoRAAdapter.load(
                directory: location.directory, model: model.config,
                memoryBudget: model.memoryBudget)
        } catch {
            let base = location.baseModel.map { " (trained for \($0))" } ?? ""
            throw failure("adapter \"\(location.name)\"\(base) cannot be used with \(modelName): \(error)")
        }
    }

    /// A hub id's snapshot in the local Hugging Face cache (HubCache), as a payload failure when missing.
    static func hubSnapshot(_ value: String, field: String, kind: String) throws -> String {
        guard let reference = HubReference(value) else { return value }
        do {
            return try HubCache.snapshot(reference)
        } catch {
            throw JobFailure.permanent("invalid \(kind) payload: \(field): \(error)")
        }
    }

    static func isDirectory(_ path: String) -> Bool {
        var isDirectory: ObjCBool = false
        return FileManager.default.fileExists(atPath: path, isDirectory: &isDirectory) && isDirectory.boolValue
    }

    static func listDirectories(_ path: String) -> [String] {
        ((try? FileManager.default.contentsOfDirectory(atPath: path)) ?? [])
            .filter { !$0.hasPrefix(".") && isDirectory(path + "/" + $0) }.sorted()
    }
}
