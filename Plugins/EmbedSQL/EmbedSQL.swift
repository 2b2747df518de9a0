// EmbedSQL: a build-tool plugin that compiles the SQL muwad runs into the binary, so that a copied or
// installed muwad needs no resource bundle and no migrations folder beside it. It turns
// Sources/Storage/SQL/*.sql (named statements) and migrations/*.sql (the schema) into EmbeddedSQL.swift,
// regenerated whenever one of those files changes. The .sql files stay the one source of truth.
import Foundation
import PackagePlugin

@main
struct EmbedSQL: BuildToolPlugin {
    func createBuildCommands(context: PluginContext, target: Target) throws -> [Command] {
        let tool = try context.tool(named: "EmbedSQLTool")
        let statements = target.directory.appending("SQL")
        let migrations = context.package.directory.appending("migrations")
        let inputs = try [statements, migrations].flatMap { folder in
            try FileManager.default.contentsOfDirectory(atPath: folder.string)
                .filter { $0.hasSuffix(".sql") }.sorted().map { folder.appending($0) }
        }
        let output = context.pluginWorkDirectory.appending("EmbeddedSQL.swift")
        return [
            .buildCommand(
                displayName: "Embedding \(inputs.count) SQL files", executable: tool.path,
                arguments: [output.string, statements.string, migrations.string],
                inputFiles: inputs, outputFiles: [output])
        ]
    }
}
