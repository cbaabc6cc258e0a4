import Foundation
import PackagePlugin

/// Embeds every `migrations/NNNN_name.sql` file of the package into the target it is applied to,
/// as a generated Swift file. The migrations folder stays the single source of truth; the built
/// binary carries the exact bytes (and so the exact checksums) of the files it was built from.
@main
struct EmbedMigrations: BuildToolPlugin {
    func createBuildCommands(context: PluginContext, target: any Target) throws -> [Command] {
        let folder = context.package.directoryURL.appending(path: "migrations")
        let names = try FileManager.default.contentsOfDirectory(atPath: folder.path)
            .filter { $0.hasSuffix(".sql") }
            .sorted()
        let inputs = names.map { folder.appending(path: $0) }
        let output = context.pluginWorkDirectoryURL.appending(path: "EmbeddedMigrations.swift")
        return [
            .buildCommand(
                displayName: "Embedding \(names.count) migration(s) into \(target.name)",
                executable: try context.tool(named: "migration-embedder").url,
                arguments: [output.path] + inputs.map(\.path),
                inputFiles: inputs,
                outputFiles: [output]
            )
        ]
    }
}
