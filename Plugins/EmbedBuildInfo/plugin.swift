import Foundation
import PackagePlugin

/// Embeds the package's `VERSION` and the git revision of the checkout into the target, as a
/// generated Swift file. Its inputs are `VERSION` and the git files that name HEAD's commit, so a
/// new commit or checkout regenerates it and nothing else does.
@main
struct EmbedBuildInfo: BuildToolPlugin {
    func createBuildCommands(context: PluginContext, target: any Target) throws -> [Command] {
        let package = context.package.directoryURL
        let versionFile = package.appending(path: "VERSION")
        let output = context.pluginWorkDirectoryURL.appending(path: "BuildInfo.swift")
        var arguments = [output.path, versionFile.path]
        var inputs = [versionFile]
        // A checkout's .git folder (a worktree's .git is a file: the revision is then "unknown").
        let git = package.appending(path: ".git")
        var isFolder: ObjCBool = false
        if FileManager.default.fileExists(atPath: git.path, isDirectory: &isFolder), isFolder.boolValue {
            arguments.append(git.path)
            var gitFiles = [git.appending(path: "HEAD"), git.appending(path: "packed-refs")]
            if let head = FileManager.default.contents(atPath: git.appending(path: "HEAD").path)
                .flatMap({ String(data: $0, encoding: .utf8) }), head.hasPrefix("ref: ")
            {
                let ref = head.dropFirst("ref: ".count).trimmingCharacters(in: .whitespacesAndNewlines)
                gitFiles.append(git.appending(path: ref))
            }
            inputs += gitFiles.filter { FileManager.default.fileExists(atPath: $0.path) }
        }
        return [
            .buildCommand(
                displayName: "Embedding the version and revision into \(target.name)",
                executable: try context.tool(named: "build-info-embedder").url,
                arguments: arguments,
                inputFiles: inputs,
                outputFiles: [output]
            )
        ]
    }
}
