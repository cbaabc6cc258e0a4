import Foundation

// Writes a Swift source file that carries the given SQL files byte for byte (base64, so that no
// quoting rule of Swift string literals can alter them), in the order given.
// Usage: migration-embedder OUTPUT.swift FILE.sql...
let arguments = CommandLine.arguments.dropFirst()
guard let output = arguments.first else {
    FileHandle.standardError.write(Data("usage: migration-embedder OUTPUT.swift FILE.sql...\n".utf8))
    exit(2)
}

var source = """
    // Generated at build time by the EmbedMigrations plugin from migrations/*.sql. Do not edit.

    /// The migration files this binary was built with: file name and base64 of the exact bytes.
    let embeddedMigrationFiles: [(fileName: String, base64: String)] = [

    """
for path in arguments.dropFirst() {
    let url = URL(fileURLWithPath: path)
    // The name goes into a Swift string literal: accept only the documented NNNN_name.sql shape.
    guard url.lastPathComponent.range(of: #"^[0-9]{4}_[A-Za-z0-9_]+\.sql$"#, options: .regularExpression) != nil else {
        FileHandle.standardError.write(Data("migration-embedder: \(path): name must be NNNN_name.sql\n".utf8))
        exit(1)
    }
    guard let bytes = FileManager.default.contents(atPath: path) else {
        FileHandle.standardError.write(Data("migration-embedder: cannot read \(path)\n".utf8))
        exit(1)
    }
    source += "    (fileName: \"\(url.lastPathComponent)\", base64: \"\(bytes.base64EncodedString())\"),\n"
}
source += "]\n"

do {
    try Data(source.utf8).write(to: URL(fileURLWithPath: output), options: .atomic)
} catch {
    FileHandle.standardError.write(Data("migration-embedder: cannot write \(output): \(error)\n".utf8))
    exit(1)
}
