import Foundation

// Writes a Swift source file with this build's version (from the package's VERSION file, the one
// place it is written) and the git revision the sources were checked out at ("unknown" outside a
// git checkout, e.g. a source tarball). It reads git's files itself instead of running git: no
// dependency on a git binary at build time, and nothing to trip over ownership checks.
// Usage: build-info-embedder OUTPUT.swift VERSION_FILE [GIT_DIR]

func fail(_ message: String) -> Never {
    FileHandle.standardError.write(Data("build-info-embedder: \(message)\n".utf8))
    exit(1)
}

func text(_ path: String) -> String? {
    FileManager.default.contents(atPath: path).flatMap { String(data: $0, encoding: .utf8) }
}

/// The commit HEAD names: directly (a detached HEAD) or through a branch, loose or packed.
func revision(gitDirectory: String) -> String? {
    guard let head = text(gitDirectory + "/HEAD")?.trimmingCharacters(in: .whitespacesAndNewlines) else { return nil }
    guard head.hasPrefix("ref: ") else { return head }
    let ref = String(head.dropFirst("ref: ".count))
    if let loose = text(gitDirectory + "/" + ref)?.trimmingCharacters(in: .whitespacesAndNewlines) { return loose }
    for line in (text(gitDirectory + "/packed-refs") ?? "").split(separator: "\n") {
        let parts = line.split(separator: " ")
        if parts.count == 2, parts[1] == ref { return String(parts[0]) }
    }
    return nil
}

let arguments = Array(CommandLine.arguments.dropFirst())
guard arguments.count == 2 || arguments.count == 3 else {
    fail("usage: build-info-embedder OUTPUT.swift VERSION_FILE [GIT_DIR]")
}
// The version lands in a Swift literal, a Debian package's name and its changelog: accept only
// the shape all three take (digits and dots, then an optional ~ or + suffix), nothing to quote.
guard let version = text(arguments[1])?.trimmingCharacters(in: .whitespacesAndNewlines),
    version.range(of: #"^[0-9]+\.[0-9]+\.[0-9]+([~+][0-9A-Za-z.]+)?$"#, options: .regularExpression) != nil
else {
    fail("\(arguments[1]): must hold one version, like 1.2.3 or 1.2.3~rc1")
}
var commit = "unknown"
if arguments.count == 3, let found = revision(gitDirectory: arguments[2]),
    found.range(of: "^[0-9a-f]{40}$", options: .regularExpression) != nil
{
    commit = found
}
let source = """
    // Generated at build time by the EmbedBuildInfo plugin from VERSION and the git checkout. Do not edit.

    /// This build's version and source revision.
    enum BuildInfo {
        static let version = "\(version)"
        static let revision = "\(commit)"
    }

    """
do {
    try Data(source.utf8).write(to: URL(fileURLWithPath: arguments[0]), options: .atomic)
} catch {
    fail("cannot write \(arguments[0]): \(error)")
}
