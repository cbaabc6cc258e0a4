import Foundation
import Postgres
import PostgresTesting
import SystemTesting
import Testing

extension ImportCommandTests {
    /// One line of stderr, naming `expected`, with no control byte but its final newline and
    /// at most a short excerpt of the file (the line is the path, the message and that excerpt).
    func expectOneSafeLine(status: Int32, stderr: String, _ expected: String, path: String = "-") {
        #expect(status == 2, "\(stderr)")
        #expect(stderr.contains(expected), "\(stderr)")
        let bytes = Array(stderr.utf8)
        #expect(bytes.last == 0x0A && !bytes.dropLast().contains { $0 < 0x20 || $0 == 0x7F }, "\(stderr.debugDescription)")
        #expect(stderr.count < path.count + 220, "\(stderr.count) characters: \(stderr)")
    }

    func expectOneSafeLine(_ result: ChildProcess.Result, _ expected: String, path: String = "-") {
        expectOneSafeLine(status: result.status, stderr: result.stderr, expected, path: path)
    }

    /// `import - < /dev/zero` once read forever, holding ever more memory: a NUL byte means the
    /// input is not CSV text, and it is refused at the first one.
    @Test func binaryInputOnStdinIsRefusedAtOnceAndMemoryStaysFlat() async throws {
        try await withDatabase { env, connection, folder in
            let started = ContinuousClock.now
            let run = try await MeasuredRun.shell(
                #"head -c 50000000 /dev/zero 2>/dev/null | "$1" import - --pool eu-west-1_Zero1"#, environment: env)
            let elapsed = ContinuousClock.now - started
            expectOneSafeLine(status: run.status, stderr: run.stderr, "line 1: holds a NUL byte")
            #expect(run.peakBytes < 100 << 20, "peak resident memory \(run.peakBytes >> 20) MB")
            #expect(elapsed < .seconds(30), "took \(elapsed)")  // loose: a debug build on a loaded machine
            #expect(try await count("SELECT count(*) FROM cognito_reset.imports", connection) == 0)
            _ = folder
        }
    }

    /// A 50 MB client_metadata value was read whole, stored and sent. No valid line is longer
    /// than the bound: such a record refuses the file while it is read, naming its line. A line
    /// within the bound whose metadata is over 256 KiB is a rejected line like any other.
    @Test func aLineBeyondTheBoundRefusesTheFileWithoutHoldingIt() async throws {
        try await withDatabase { env, connection, folder in
            var bytes = Array("username,user_pool_id,client_metadata.k\nu1,eu-west-1_Big1,small\nu2,eu-west-1_Big1,".utf8)
            bytes += [UInt8](repeating: UInt8(ascii: "a"), count: 50_000_000)
            bytes += Array("\nu3,eu-west-1_Big1,\n".utf8)
            let path = try write(bytes, "big.csv", in: folder)
            bytes = []
            let run = try await MeasuredRun.run([CognitoResetBinary.url.path, "import", path], environment: env)
            expectOneSafeLine(status: run.status, stderr: run.stderr, "line 3: longer than 1048576 bytes", path: path)
            #expect(run.stderr.contains("client metadata"), "\(run.stderr)")
            #expect(run.peakBytes < 100 << 20, "peak resident memory \(run.peakBytes >> 20) MB")
            for table in ["jobs", "imports", "import_rejections"] {
                #expect(try await count("SELECT count(*) FROM cognito_reset.\(table)", connection) == 0, "\(table)")
            }

            let over = "username,user_pool_id,client_metadata.k\nv1,eu-west-1_Big1,\(String(repeating: "b", count: 300_000))\nv2,eu-west-1_Big1,ok\n"
            let rejected = try await CognitoResetBinary.run(["import", "-", "--json"], environment: env, stdin: over)
            #expect(rejected.status == 0, "\(rejected.stderr)")
            let summary = try report(rejected)
            #expect(summary["accepted"] as? Int == 1 && summary["rejected"] as? Int == 1)
            let rejection = (summary["rejections"] as? [[String: Any]])?.first
            #expect(rejection?["line"] as? Int == 2)
            #expect(rejection?["reason"] as? String == "client_metadata: keys and values together must be at most 262144 bytes (256 KiB) of UTF-8")
            #expect(try await count("SELECT count(*) FROM cognito_reset.import_rejections WHERE reason LIKE 'client_metadata:%256 KiB%'", connection) == 1)
        }
    }

    /// Valid lines can be large too (client metadata up to 256 KiB each): batches on their way
    /// to COPY are bounded in bytes as well as lines, so 100 MB of them never sit in memory.
    @Test func manyLinesWithLargeMetadataKeepMemoryFlat() async throws {
        try await withDatabase { env, connection, folder in
            let value = String(repeating: "m", count: 200_000)
            let csv = "username,user_pool_id,client_metadata.k\n" + (1...500).map { "m\($0),eu-west-1_Meta1,\(value)\n" }.joined()
            let path = try write(Array(csv.utf8), "metadata.csv", in: folder)
            let run = try await MeasuredRun.run([CognitoResetBinary.url.path, "import", path, "--dry-run", "--json"], environment: env)
            #expect(run.status == 0, "\(run.stderr)")
            #expect(run.stdout.contains(#""accepted":500"#), "\(run.stdout)")
            #expect(run.peakBytes < 100 << 20, "peak resident memory \(run.peakBytes >> 20) MB")
            _ = connection
        }
    }

    /// `import f.csv` on a FIFO waited forever for a writer. FILE must be a regular file (a
    /// device neither); standard input may still be a pipe.
    @Test func aFIFOGivenAsTheFileIsRefusedWithoutWaitingForAWriter() async throws {
        try await withDatabase { env, connection, folder in
            let fifo = folder.appending(path: "f.csv").path
            #expect(mkfifo(fifo, 0o600) == 0)
            let child = try CognitoResetBinary.start(["import", fifo, "--pool", "eu-west-1_Fifo1"], environment: env)
            // Bounds a hang only (the open blocked for good): a passing run never waits for it.
            let watchdog = Task {
                try await Task.sleep(for: .seconds(60))
                child.send(SIGKILL)
            }
            let fromFIFO = await child.wait()
            watchdog.cancel()
            #expect(fromFIFO.status == 2, "\(fromFIFO.stderr)")
            #expect(fromFIFO.stderr == "error: \(fifo): not a regular file\n", "\(fromFIFO.stderr)")

            let device = try await CognitoResetBinary.run(["import", "/dev/zero", "--pool", "eu-west-1_Fifo1"], environment: env)
            #expect(device.status == 2)
            #expect(device.stderr.contains("/dev/zero: not a regular file"), "\(device.stderr)")

            let piped = try await MeasuredRun.shell(
                #"printf 'username\np1\np2\n' | "$1" import - --pool eu-west-1_Fifo1 --json"#, environment: env)
            #expect(piped.status == 0, "\(piped.stderr)")
            let summary = try #require(JSONSerialization.jsonObject(with: Data(piped.stdout.utf8)) as? [String: Any], "\(piped.stdout)")
            #expect(summary["accepted"] as? Int == 2)
            #expect(try await count("SELECT count(*) FROM cognito_reset.jobs", connection) == 2)
        }
    }

    /// Error lines once quoted up to 60 raw bytes of the file: NULs, terminal escapes, through
    /// a link even a line of /etc/shadow. Now at most a short excerpt, every control escaped, in
    /// what is printed and in what the inbox files.
    @Test func messagesShowTheFileOnlyAsAShortEscapedExcerpt() async throws {
        try await withDatabase { env, connection, folder in
            let escape = try write(Array("username,\u{1B}[31mred\n".utf8), "escape.csv", in: folder)
            let colored = try await CognitoResetBinary.run(["import", escape, "--pool", "eu-west-1_Esc1"], environment: env)
            expectOneSafeLine(colored, "unknown column 8 characters that are not column names, not shown", path: escape)

            // Random bytes with NULs, from a fixed seed.
            var state: UInt64 = 0x5EED
            let random = (0..<65_536).map { _ -> UInt8 in
                state = state &* 6_364_136_223_846_793_005 &+ 1_442_695_040_888_963_407
                return UInt8(truncatingIfNeeded: state >> 56)
            }
            #expect(random.contains(0))
            let binary = try write(random, "random.csv", in: folder)
            expectOneSafeLine(try await CognitoResetBinary.run(["import", binary], environment: env), "holds a NUL byte", path: binary)

            // The importer's own environment, DATABASE_URL included: refused, none of it shown.
            let environ = try await CognitoResetBinary.run(["import", "/proc/self/environ", "--pool", "eu-west-1_Esc1"], environment: env)
            expectOneSafeLine(environ, "line 1: holds a NUL byte", path: "/proc/self/environ")
            #expect(!environ.stderr.contains("DATABASE_URL") && !environ.stderr.contains("postgres"), "\(environ.stderr)")

            // The inbox prints the reason and files it in the report: escaped in both.
            let inbox = folder.appending(path: "inbox")
            try FileManager.default.createDirectory(at: inbox, withIntermediateDirectories: true)
            _ = try write(Array("username,user_pool_id,\u{1B}]0;owned\u{7}\n".utf8), "inbox/esc.csv", in: folder)
            let run = try await CognitoResetBinary.run(["import", "--inbox", inbox.path], environment: env)
            #expect(run.status == 0, "\(run.stdout)\(run.stderr)")
            #expect(!run.stdout.utf8.contains(0x1B) && !run.stdout.utf8.contains(0x07), "\(run.stdout.debugDescription)")
            let filed = try #require(
                JSONSerialization.jsonObject(
                    with: Data(contentsOf: inbox.appending(path: "rejected/esc.csv.report.json"))) as? [String: Any])
            let reason = try #require(filed["error"] as? String)
            #expect(reason.contains("unknown column 10 characters that are not column names, not shown"), "\(reason)")
            #expect(!reason.unicodeScalars.contains { $0.value < 0x20 }, "\(reason.debugDescription)")
            #expect(try await count("SELECT count(*) FROM cognito_reset.imports", connection) == 0)
        }
    }
}

/// Runs a program and measures its peak memory: the largest resident set of it and of every
/// child it waited for, so `sh -c 'head … | cognito-reset …'` measures the importer.
///
/// Through a small Python parent that reads `RUSAGE_CHILDREN`: the peak a child reports counts
/// the memory of the process it was spawned from until its exec, and this test process is
/// large (it builds 50 MB files), so asking for it directly would measure the tests.
enum MeasuredRun {
    struct Outcome {
        var status: Int32
        var stdout: String
        var stderr: String
        var peakBytes: Int
    }

    static let wrapper = """
        import resource, subprocess, sys
        code = subprocess.call(sys.argv[2:])
        with open(sys.argv[1], "w") as out:
            out.write(str(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss))
        sys.exit(code if code >= 0 else 128 - code)
        """

    /// Runs `script` with `sh -c`, the binary as `$1`, in `CognitoResetBinary`'s environment.
    static func shell(_ script: String, environment: [String: String]) async throws -> Outcome {
        try await run(["/bin/sh", "-c", script, "sh", CognitoResetBinary.url.path], environment: environment)
    }

    /// Runs `command` (stdin from /dev/null) in `CognitoResetBinary`'s environment.
    static func run(_ command: [String], environment: [String: String]) async throws -> Outcome {
        let peakFile = FileManager.default.temporaryDirectory.appending(path: "peak-\(UUID().uuidString)")
        defer { try? FileManager.default.removeItem(at: peakFile) }
        let result = try await ChildProcess.run(
            URL(fileURLWithPath: "/usr/bin/env"), ["python3", "-c", wrapper, peakFile.path] + command,
            environment: CognitoResetBinary.environment(environment))
        let peakKiB = Int((try? String(contentsOf: peakFile, encoding: .utf8)) ?? "") ?? Int.max / 1024  // KiB on Linux
        return Outcome(status: result.status, stdout: result.stdout, stderr: result.stderr, peakBytes: peakKiB * 1024)
    }
}
