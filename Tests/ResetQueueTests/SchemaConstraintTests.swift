import Postgres
import Testing

/// The database itself refuses invalid rows, whoever writes them.
@Suite("Schema constraints")
struct SchemaConstraintTests {
    struct InvalidRow: Sendable, CustomTestStringConvertible {
        let testDescription: String
        let sql: String
        let constraint: String
        var sqlState = SQLState.checkViolation
    }

    static let pool = "eu-west-1_AbC123"
    static func job(_ columns: String, _ values: String) -> String {
        "INSERT INTO cognito_reset.jobs (user_pool_id, username, \(columns)) VALUES ('\(pool)', 'alice', \(values))"
    }
    static func user(_ pool: String, _ username: String) -> String {
        "INSERT INTO cognito_reset.jobs (user_pool_id, username) VALUES ('\(pool)', '\(username)')"
    }

    static let invalidRows: [InvalidRow] = [
        .init(testDescription: "pool id without region separator", sql: user("euwest1AbC123", "alice"), constraint: "jobs_user_pool_id_format"),
        .init(
            testDescription: "pool id of 56 characters", sql: user("eu-west-1_" + String(repeating: "a", count: 46), "alice"),
            constraint: "jobs_user_pool_id_format"),
        .init(testDescription: "pool id with a space", sql: user("eu west-1_AbC", "alice"), constraint: "jobs_user_pool_id_format"),
        .init(testDescription: "pool id ending in underscore", sql: user("eu-west-1_", "alice"), constraint: "jobs_user_pool_id_format"),
        .init(testDescription: "empty username", sql: user(pool, ""), constraint: "jobs_username_length"),
        .init(testDescription: "129-character username", sql: user(pool, String(repeating: "u", count: 129)), constraint: "jobs_username_length"),
        .init(testDescription: "username with a space", sql: user(pool, "al ice"), constraint: "jobs_username_characters"),
        .init(
            testDescription: "username with a newline", sql: "INSERT INTO cognito_reset.jobs (user_pool_id, username) VALUES ('\(pool)', E'al\\nice')",
            constraint: "jobs_username_characters"),
        .init(testDescription: "unknown state", sql: job("state", "'done'"), constraint: "jobs_state_known"),
        .init(testDescription: "negative priority", sql: job("priority", "-1"), constraint: "jobs_priority_range"),
        .init(testDescription: "priority above 1000", sql: job("priority", "1001"), constraint: "jobs_priority_range"),
        .init(testDescription: "zero max_attempts", sql: job("max_attempts", "0"), constraint: "jobs_max_attempts_range"),
        .init(testDescription: "negative attempt", sql: job("attempt", "-1"), constraint: "jobs_attempt_nonnegative"),
        .init(testDescription: "attempt above max_attempts", sql: job("attempt, max_attempts", "4, 3"), constraint: "jobs_attempt_within_max"),
        .init(testDescription: "succeeded without finished_at", sql: job("state, attempt", "'succeeded', 1"), constraint: "jobs_finished_at_iff_finished"),
        .init(testDescription: "pending with finished_at", sql: job("finished_at", "now()"), constraint: "jobs_finished_at_iff_finished"),
        .init(testDescription: "running without a lease", sql: job("state, started_at", "'running', now()"), constraint: "jobs_lease_iff_running"),
        .init(
            testDescription: "running without started_at", sql: job("state, locked_by, lease_expires_at", "'running', 'w1', now()"),
            constraint: "jobs_running_has_started"),
        .init(testDescription: "pending but locked by a worker", sql: job("locked_by", "'w1'"), constraint: "jobs_locked_by_only_when_running"),
        .init(
            testDescription: "succeeded without any attempt", sql: job("state, finished_at", "'succeeded', now()"), constraint: "jobs_succeeded_was_attempted"),
        .init(testDescription: "metadata that is an array", sql: job("client_metadata", "'[1]'"), constraint: "jobs_client_metadata_string_map"),
        .init(testDescription: "metadata with a number value", sql: job("client_metadata", #"'{"a": 1}'"#), constraint: "jobs_client_metadata_string_map"),
        .init(
            testDescription: "metadata with an array of strings", sql: job("client_metadata", #"'{"a": ["x"]}'"#), constraint: "jobs_client_metadata_string_map"
        ),
        .init(testDescription: "empty idempotency key", sql: job("idempotency_key", "''"), constraint: "jobs_idempotency_key_length"),
        .init(
            testDescription: "second active job for the same user",
            sql: "INSERT INTO cognito_reset.jobs (user_pool_id, username) VALUES ('\(pool)', 'bob'), ('\(pool)', 'bob')",
            constraint: "jobs_one_active_per_user", sqlState: SQLState.uniqueViolation),
        .init(
            testDescription: "attempt with an unknown outcome",
            sql: """
                WITH j AS (\(user(pool, "carol")) RETURNING id)
                INSERT INTO cognito_reset.attempts (job_id, attempt, worker_id, started_at, finished_at, outcome)
                SELECT id, 1, 'w1', now(), now(), 'maybe' FROM j
                """,
            constraint: "attempts_outcome_known"),
        .init(
            testDescription: "worker in an unknown state",
            sql: "INSERT INTO cognito_reset.workers (id, host, pid, version, state) VALUES ('w1', 'h', 1, '1', 'sleeping')",
            constraint: "workers_state_known"),
        .init(
            testDescription: "rate above the maximum",
            sql: "INSERT INTO cognito_reset.rate_limits (key, rate) VALUES ('k', 20000)", constraint: "rate_limits_rate_range"),
        .init(
            testDescription: "a ceiling a hair above zero",
            sql: "INSERT INTO cognito_reset.rate_limits (key, rate) VALUES ('k', 1e-300)", constraint: "rate_limits_rate_range"),
        .init(
            testDescription: "a floor below one call per 1,000 s",
            sql: "INSERT INTO cognito_reset.rate_limits (key, floor_rate) VALUES ('k', 0.0001)", constraint: "rate_limits_floor_rate_range"),
        .init(
            testDescription: "a pool role that is not a role ARN",
            sql: "INSERT INTO cognito_reset.pool_roles (user_pool_id, role_arn) VALUES ('eu-west-1_a', 'arn:aws:iam::111111111111:user/x')",
            constraint: "pool_roles_role_arn_format"),
        .init(
            testDescription: "a pool role for a malformed pool id",
            sql: "INSERT INTO cognito_reset.pool_roles (user_pool_id, role_arn) VALUES ('nounderscore', 'arn:aws:iam::111111111111:role/x')",
            constraint: "pool_roles_user_pool_id_format"),
        .init(
            testDescription: "an external id with an escape sequence",
            sql:
                "INSERT INTO cognito_reset.pool_roles (user_pool_id, role_arn, external_id) VALUES ('eu-west-1_a', 'arn:aws:iam::111111111111:role/x', E'x\\x1b[2J')",
            constraint: "pool_roles_external_id_format"),
        .init(
            testDescription: "a worker serving a region named with a space",
            sql: "INSERT INTO cognito_reset.workers (id, host, pid, version, regions) VALUES ('w', 'h', 1, 'v', '{\"eu west 1\"}')",
            constraint: "workers_regions_names"),
        .init(
            testDescription: "an import rate a hair above zero",
            sql: "INSERT INTO cognito_reset.imports (file_name, sha256, rate) VALUES ('f.csv', repeat('a', 64), 1e-300)", constraint: "imports_rate_range"),
        .init(
            testDescription: "an import's next slot at infinity",
            sql: "INSERT INTO cognito_reset.imports (file_name, sha256, next_slot_at) VALUES ('f.csv', repeat('a', 64), 'infinity')",
            constraint: "imports_next_slot_at_finite"),
        .init(testDescription: "a job to run at infinity", sql: job("run_at", "'infinity'"), constraint: "jobs_run_at_finite"),
        .init(testDescription: "a job to run at minus infinity", sql: job("run_at", "'-infinity'"), constraint: "jobs_run_at_finite"),
        .init(
            testDescription: "more tokens than the burst",
            sql: "INSERT INTO cognito_reset.rate_limits (key, burst, tokens) VALUES ('k', 5, 6)", constraint: "rate_limits_tokens_range"),
        .init(
            testDescription: "import rows that do not add up",
            sql: "INSERT INTO cognito_reset.imports (file_name, sha256, rows_read, rows_accepted) VALUES ('f.csv', repeat('a', 64), 1, 2)",
            constraint: "imports_rows_add_up"),
        .init(
            testDescription: "import with a malformed sha256",
            sql: "INSERT INTO cognito_reset.imports (file_name, sha256) VALUES ('f.csv', 'abc')", constraint: "imports_sha256_format"),
    ]

    @Test(arguments: invalidRows)
    func refuses(_ row: InvalidRow) async throws {
        try await withMigratedConnection { connection in
            let error = try await #require(throws: PostgresError.self) { try await connection.execute(PostgresQuery(row.sql)) }
            #expect(error.sqlState == row.sqlState)
            #expect(error.constraintName == row.constraint)
            #expect(try await connection.scalar("SELECT count(*) FROM cognito_reset.jobs", as: Int.self) == 0)
        }
    }

    @Test func aPlainInsertOfPoolAndUsernameIsACompleteRequest() async throws {
        try await withMigratedConnection { connection in
            let username = String(repeating: "ü", count: 128)
            let pool = "eu-west-1_" + String(repeating: "a", count: 45)  // 55 characters: the maximum
            try await connection.execute(
                "INSERT INTO cognito_reset.jobs (user_pool_id, username) VALUES (\(pool), \(username))")
            let row = try await connection.query(
                """
                SELECT state, priority, attempt, max_attempts, run_at <= now(), requested_by = current_user,
                       locked_by, finished_at
                FROM cognito_reset.jobs
                """)[0]
            #expect(try row.decode(String.self, at: 0) == "pending")
            #expect(try row.decode(Int.self, at: 1) == 100)
            #expect(try row.decode(Int.self, at: 2) == 0)
            #expect(try row.decode(Int.self, at: 3) == 10)
            #expect(try row.decode(Bool.self, at: 4))
            #expect(try row.decode(Bool.self, at: 5))
            #expect(try row.decode(String?.self, at: 6) == nil)
            #expect(try row.decode(String?.self, at: 7) == nil)
        }
    }

    @Test func theAuditIsAppendOnly() async throws {
        try await withMigratedConnection { connection in
            try await connection.execute(
                """
                WITH j AS (INSERT INTO cognito_reset.jobs (user_pool_id, username) VALUES ('eu-west-1_a1', 'dave') RETURNING id)
                INSERT INTO cognito_reset.attempts (job_id, attempt, worker_id, started_at, finished_at, outcome)
                SELECT id, 1, 'w1', now(), now(), 'succeeded' FROM j
                """)
            let error = try await #require(throws: PostgresError.self) {
                try await connection.execute("UPDATE cognito_reset.attempts SET outcome = 'throttled'")
            }
            #expect(error.sqlState == SQLState.insufficientPrivilege)
            #expect(error.message.contains("append-only"))
        }
    }
    /// Each check sits only where a row can break it (docs/design.md, "Storage"): every statement
    /// that writes a partition prepares all of its checks again, so a check of what other systems
    /// send belongs on the hot partition alone, where all their rows land.
    @Test func historyCarriesTheStateInvariantsButNotTheInputChecks() async throws {
        try await withMigratedConnection { connection in
            func checks(_ table: String) async throws -> Set<String> {
                Set(
                    try await connection.query(
                        PostgresQuery("SELECT conname FROM pg_constraint WHERE conrelid = $1::regclass AND contype = 'c'", [table])
                    ).map { try $0.decode(String.self, at: 0) })
            }
            let input: Set = [
                "jobs_user_pool_id_format", "jobs_username_length", "jobs_username_characters", "jobs_client_metadata_string_map",
                "jobs_priority_range", "jobs_max_attempts_range", "jobs_idempotency_key_length",
            ]
            let invariants: Set = ["jobs_finished_at_iff_finished", "jobs_lease_iff_running", "jobs_succeeded_was_attempted", "jobs_attempt_within_max"]
            let active = try await checks("cognito_reset.jobs_active")
            #expect(input.isSubset(of: active) && invariants.isSubset(of: active))
            // A day created now, and the days created with the schema.
            #expect(try await connection.scalar("SELECT cognito_reset.ensure_history_partitions(5)", as: Int.self) > 0)
            let days = try await connection.query(
                "SELECT table_name FROM cognito_reset.history_partitions WHERE parent = 'jobs_finished' AND lower_bound IS NOT NULL"
            ).map { try $0.decode(String.self, at: 0) }
            #expect(days.count >= 6)
            for day in days {
                let history = try await checks("cognito_reset." + day)
                #expect(history.isDisjoint(with: input), "\(day)")
                #expect(invariants.isSubset(of: history), "\(day)")
                #expect(!history.contains(day + "_bounds"), "\(day)")
            }
            // A finished row is still held to the invariants in history.
            try await connection.execute(
                """
                INSERT INTO cognito_reset.jobs (user_pool_id, username, state, attempt, started_at, finished_at)
                VALUES ('eu-west-1_a1', 'erin', 'succeeded', 1, now(), now())
                """)
            let error = try await #require(throws: PostgresError.self) {
                try await connection.execute("UPDATE cognito_reset.jobs SET finished_at = NULL WHERE username = 'erin'")
            }
            #expect(error.constraintName == "jobs_finished_at_iff_finished")
        }
    }
}
