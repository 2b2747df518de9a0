// AdapterStore: reads the adapter registry (muwa.adapters). Fine-tune jobs register adapters through their
// outputs (a trigger in migration 0005 fills the table when the job's success is recorded); generate and
// evaluate jobs name adapters, and this is where a daemon looks those names up.

/// One row of muwa.adapters.
public struct RegisteredAdapter: Sendable, Equatable {
    public let name: String
    /// The model the adapter was trained on, as the fine-tune payload named it.
    public let baseModel: String
    /// The peft-format directory.
    public let path: String
    public let loraConfig: JSONValue?
    public let jobID: Int64?

    public init(name: String, baseModel: String, path: String, loraConfig: JSONValue? = nil, jobID: Int64? = nil) {
        self.name = name
        self.baseModel = baseModel
        self.path = path
        self.loraConfig = loraConfig
        self.jobID = jobID
    }
}

/// Looks adapters up by name.
public protocol AdapterRegistry: Sendable {
    /// The registered adapter called `name`, or nil when there is none.
    func adapter(named name: String) async throws -> RegisteredAdapter?
}

/// The registry in PostgreSQL.
public struct AdapterStore: AdapterRegistry {
    public let database: Database

    public init(database: Database) {
        self.database = database
    }

    public func adapter(named name: String) async throws -> RegisteredAdapter? {
        guard let row = try await database.execute(.adapterLookup, [name]).first else { return nil }
        return RegisteredAdapter(
            name: try row.string("name"), baseModel: try row.string("base_model"), path: try row.string("path"),
            loraConfig: try row.json("lora_config"), jobID: try row.text("job_id").flatMap { Int64($0) })
    }
}
