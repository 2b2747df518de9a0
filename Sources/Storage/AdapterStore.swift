// AdapterStore: reads the adapter registry (muwa.adapters, the newest version of each name, and
// muwa.adapter_versions, every version). Fine-tune jobs register adapters through their outputs (a trigger
// fills the tables when the job's success is recorded, migrations 0005 and 0007); generate and evaluate jobs
// name adapters ("muwa" for the newest, "muwa@2" for version 2), and this is where a daemon looks them up.

/// One row of muwa.adapters.
public struct RegisteredAdapter: Sendable, Equatable {
    public let name: String
    /// The model the adapter was trained on, as the fine-tune payload named it.
    public let baseModel: String
    /// The peft-format directory.
    public let path: String
    public let loraConfig: JSONValue?
    public let jobID: Int64?
    /// The version (1, 2, …); muwa.adapters holds the newest of each name.
    public let version: Int

    public init(
        name: String, baseModel: String, path: String, loraConfig: JSONValue? = nil, jobID: Int64? = nil,
        version: Int = 1
    ) {
        self.name = name
        self.version = version
        self.baseModel = baseModel
        self.path = path
        self.loraConfig = loraConfig
        self.jobID = jobID
    }
}

/// Looks adapters up by name.
public protocol AdapterRegistry: Sendable {
    /// The newest version of the registered adapter called `name`, or nil when there is none.
    func adapter(named name: String) async throws -> RegisteredAdapter?
    /// Version `version` of the adapter called `name`, or nil when there is none.
    func adapter(named name: String, version: Int) async throws -> RegisteredAdapter?
}

/// The registry in PostgreSQL.
public struct AdapterStore: AdapterRegistry {
    public let database: Database

    public init(database: Database) {
        self.database = database
    }

    public func adapter(named name: String) async throws -> RegisteredAdapter? {
        guard let row = try await database.execute(.adapterLookup, [name]).first else { return nil }
        return try Self.adapter(row)
    }

    public func adapter(named name: String, version: Int) async throws -> RegisteredAdapter? {
        guard let row = try await database.execute(.adapterVersionLookup, [name, String(version)]).first else {
            return nil
        }
        return try Self.adapter(row)
    }

    private static func adapter(_ row: Row) throws -> RegisteredAdapter {
        RegisteredAdapter(
            name: try row.string("name"), baseModel: try row.string("base_model"), path: try row.string("path"),
            loraConfig: try row.json("lora_config"), jobID: try row.text("job_id").flatMap { Int64($0) },
            version: try row.int("version"))
    }
}
