import CognitoClient
import CognitoTesting
import Foundation
import Postgres
import PostgresTesting
import ResetQueue
import Testing

/// Each outcome path of the job lifecycle (docs/design.md), through a real worker, a real database and a
/// scripted fake Cognito.
@Suite("Worker outcomes")
struct WorkerOutcomeTests {
    struct Row {
        let state: String
        let attempt: Int
        let code: String?
        let message: String?
        let requestID: String?
        /// run_at minus the end of the last call (as the worker saw it): the scheduled delay,
        /// independent of how long the test takes to look.
        let delayAfterCall: Double
    }

    func job(_ harness: WorkerHarness, _ username: String) async throws -> Row {
        let row = try await harness.pool.query(
            """
            SELECT state, attempt, last_error_code, last_error_message, cognito_request_id,
                   extract(epoch FROM run_at - (SELECT max(finished_at) FROM cognito_reset.attempts a WHERE a.job_id = j.id))::double precision
            FROM cognito_reset.jobs j WHERE username = \(username)
            """)[0]
        return Row(
            state: try row.decode(String.self, at: 0), attempt: try row.decode(Int.self, at: 1),
            code: try row.decode(String?.self, at: 2), message: try row.decode(String?.self, at: 3),
            requestID: try row.decode(String?.self, at: 4), delayAfterCall: try row.decode(Double?.self, at: 5) ?? 0)
    }

    /// Runs one worker until the single job's first call has been recorded.
    func runOnce(_ harness: WorkerHarness, maxAttempts: Int = 10, throttlePause: Duration = .milliseconds(10)) async throws {
        try await harness.insertJobs(1, prefix: "alice", maxAttempts: maxAttempts)
        var configuration = WorkerHarness.configuration()
        configuration.retryPolicy.throttleMinimum = throttlePause
        let worker = harness.makeWorker(configuration)
        let task = harness.start(worker)
        _ = try await harness.events.next("the outcome to be written") {
            if case .recorded(let ids) = $0 { !ids.isEmpty } else { false }
        }
        try await harness.stop(worker, task)
    }

    @Test func successIsRecordedWithTheRequestID() async throws {
        try await WorkerHarness.with(responder: { _, _ in .cognitoSuccess(requestID: "rid-ok") }) { harness in
            try await runOnce(harness)
            let row = try await job(harness, "alice1")
            #expect(row.state == "succeeded")
            #expect(row.attempt == 1)
            #expect(row.requestID == "rid-ok")
            #expect(
                try await harness.count(
                    """
                    SELECT count(*) FROM cognito_reset.attempts WHERE outcome = 'succeeded' AND request_id = 'rid-ok'
                      AND attempt = 1 AND worker_id LIKE 'test-worker-%' AND latency_ms >= 0
                    """) == 1)
            #expect(try await harness.count("SELECT count(*) FROM cognito_reset.jobs WHERE finished_at IS NOT NULL AND locked_by IS NULL") == 1)
        }
    }

    @Test func aPermanentErrorFailsTheJobWithCodeMessageAndRequestID() async throws {
        try await WorkerHarness.with(responder: { _, _ in
            .cognitoError(400, type: "UserNotFoundException", message: "User does not exist.", requestID: "rid-nf")
        }) { harness in
            try await runOnce(harness)
            let row = try await job(harness, "alice1")
            #expect(row.state == "failed")
            #expect(row.code == "UserNotFoundException")
            #expect(row.message == "User does not exist.")
            #expect(row.requestID == "rid-nf")
            #expect(try await harness.count("SELECT count(*) FROM cognito_reset.attempts WHERE outcome = 'permanent_error'") == 1)
        }
    }

    @Test func aTransientErrorRetriesAfterJitteredExponentialBackoff() async throws {
        // The client's own quick retries are exhausted first (3 calls), then the job backs off:
        // with random() = 0.5 and a 10 s base, attempt 1 waits 0.5 × 10 s = 5 s.
        try await WorkerHarness.with(responder: { _, _ in .cognitoError(500, type: "InternalErrorException", message: "oops") }) { harness in
            try await runOnce(harness)
            let row = try await job(harness, "alice1")
            #expect(row.state == "retrying")
            #expect(row.attempt == 1)
            #expect(row.code == "InternalErrorException")
            // Scheduled when the outcome was written: 5 s after the call, plus at most the write delay.
            #expect(row.delayAfterCall >= 4.99 && row.delayAfterCall < 8, "\(row.delayAfterCall)")
            #expect(try await harness.count("SELECT count(*) FROM cognito_reset.attempts WHERE outcome = 'transient_error'") == 1)
        }
    }

    /// An answer that only looks like success (a proxy's login page, an error type on a 200)
    /// never makes a job `succeeded`.
    @Test(arguments: [
        FakeHTTPServer.Reply.respond(status: 200, headers: [("Content-Type", "text/html")], body: "<html>Sign in to the proxy</html>"),
        .respond(status: 200, body: #"{"__type":"UserNotFoundException"}"#),
        .respond(status: 200, headers: [("X-Amzn-ErrorType", "InternalErrorException")], body: "{}"),
        .respond(status: 307, headers: [("Location", "http://127.0.0.1:1/")]),
    ])
    func anAnswerThatOnlyLooksLikeSuccessRetries(_ reply: FakeHTTPServer.Reply) async throws {
        try await WorkerHarness.with(responder: { _, _ in reply }) { harness in
            try await runOnce(harness)
            let row = try await job(harness, "alice1")
            #expect(row.state == "retrying")
            #expect(try await harness.count("SELECT count(*) FROM cognito_reset.attempts WHERE outcome = 'succeeded'") == 0)
        }
    }

    /// A server that sends its body one byte at a time holds no job: the call's deadline ends
    /// the exchange, the job retries, and the lease is given back.
    @Test func aTrickledAnswerEndsAtTheDeadline() async throws {
        let trickle = FakeHTTPServer.Reply.slowBody(
            status: 200, headers: [], chunks: ["{"] + Array(repeating: " ", count: 100) + ["}"], pause: .milliseconds(100))
        try await WorkerHarness.with(
            responder: { _, _ in trickle }, timeouts: .init(connect: .seconds(5), read: .seconds(5), total: .milliseconds(500))
        ) { harness in
            try await runOnce(harness)
            let row = try await job(harness, "alice1")
            #expect(row.state == "retrying")
            #expect(row.code == "Timeout")
        }
    }

    @Test func throttlingRetriesSoonWithoutSpendingAnAttempt() async throws {
        try await WorkerHarness.with(responder: { _, _ in .cognitoError(400, type: "TooManyRequestsException", message: "Rate exceeded") }) { harness in
            try await runOnce(harness, throttlePause: .seconds(2))
            let row = try await job(harness, "alice1")
            #expect(row.state == "retrying")
            #expect(row.attempt == 0, "the attempt was given back")
            #expect(row.delayAfterCall >= 1.99 && row.delayAfterCall < 5, "\(row.delayAfterCall)")
            #expect(try await harness.count("SELECT count(*) FROM cognito_reset.attempts WHERE outcome = 'throttled' AND attempt = 1") == 1)
        }
    }

    @Test func usedUpAttemptsFailWithTheLastError() async throws {
        try await WorkerHarness.with(responder: { _, _ in .respond(status: 503) }) { harness in
            try await runOnce(harness, maxAttempts: 1)
            let row = try await job(harness, "alice1")
            #expect(row.state == "failed")
            #expect(row.attempt == 1)
            #expect(row.code == "HTTP 503")
        }
    }

    @Test func limitExceededWaitsMinutesAndSpendsTheAttempt() async throws {
        try await WorkerHarness.with(responder: { _, _ in .cognitoError(400, type: "LimitExceededException", message: "Attempt limit exceeded") }) { harness in
            try await runOnce(harness)
            let row = try await job(harness, "alice1")
            #expect(row.state == "retrying")
            #expect(row.attempt == 1)
            #expect(row.delayAfterCall >= 449.99 && row.delayAfterCall < 453, "\(row.delayAfterCall)")  // 300 s + 0.5 × 300 s
        }
    }

    @Test func rejectedCredentialsRetryLikeAnOutage() async throws {
        try await WorkerHarness.with(responder: { _, _ in .cognitoError(400, type: "UnrecognizedClientException", message: "invalid token") }) { harness in
            try await runOnce(harness)
            let row = try await job(harness, "alice1")
            #expect(row.state == "retrying")
            #expect(row.code == "UnrecognizedClientException")
            #expect(try await harness.count("SELECT count(*) FROM cognito_reset.attempts WHERE outcome = 'credentials_error'") == 1)
        }
    }

    @Test func dataCognitoWouldRefuseFailsWithoutACall() async throws {
        try await WorkerHarness.with { harness in
            // A row from before migration 0005, whose check is NOT VALID for old rows: the table
            // refuses it now, so the check is dropped to put one there.
            try await harness.pool.query("ALTER TABLE cognito_reset.jobs_active DROP CONSTRAINT jobs_username_characters")
            try await harness.pool.query(
                "INSERT INTO cognito_reset.jobs (user_pool_id, username) VALUES (\(WorkerHarness.pool), \("bad\u{200B}name"))")
            let worker = harness.makeWorker()
            let task = harness.start(worker)
            _ = try await harness.events.next("the outcome") { if case .recorded(let ids) = $0 { !ids.isEmpty } else { false } }
            try await harness.stop(worker, task)
            #expect(try await harness.count("SELECT count(*) FROM cognito_reset.jobs WHERE state = 'failed' AND last_error_code = 'InvalidInput'") == 1)
            #expect(harness.server.requests.isEmpty)
        }
    }

    @Test func claimOrderIsPriorityThenRunAtThenID() async throws {
        try await WorkerHarness.with { harness in
            try await harness.insertJobs(3, prefix: "bulk", priority: 500)
            try await harness.insertJobs(1, prefix: "urgent", priority: 0)
            var configuration = WorkerHarness.configuration()
            configuration.concurrency = 1
            let worker = harness.makeWorker(configuration)
            let task = harness.start(worker)
            try await harness.waitUntilAllFinished()
            try await harness.stop(worker, task)
            #expect(harness.server.requests.compactMap(\.username) == ["urgent1", "bulk1", "bulk2", "bulk3"])
        }
    }
}

@Suite("Retry decisions")
struct RetryDecisionTests {
    @Test func backoffIsExponentialFullJitterAndCapped() {
        let policy = JobRetryPolicy()
        #expect(policy.backoff(afterAttempt: 1, unitRandom: 1) == .seconds(10))
        #expect(policy.backoff(afterAttempt: 2, unitRandom: 1) == .seconds(20))
        #expect(policy.backoff(afterAttempt: 4, unitRandom: 0.5) == .seconds(40))
        #expect(policy.backoff(afterAttempt: 20, unitRandom: 1) == .seconds(900))
        #expect(policy.backoff(afterAttempt: 3, unitRandom: 0) == .zero)
    }
}
