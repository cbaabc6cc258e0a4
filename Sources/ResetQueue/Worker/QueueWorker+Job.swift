import CognitoClient
import Foundation
import Logging

extension QueueWorker {
    /// One claimed job: wait for its slot, call Cognito, hand the outcome to the
    /// recorder. A job that never got to its call (shutdown) is given back; one cancelled by an
    /// operator while it waited is left alone.
    func process(_ job: ClaimedJob, after wait: Duration, recorder: OutcomeRecorder) async {
        if wait > .zero { await state.pause(for: wait) }
        // A job claimed ahead waits here until a call ends (a few milliseconds on a busy worker).
        // Stopping, it gets no slot and gives itself back unstarted.
        let hasSlot = await state.acquireCallSlot(for: job.id)
        guard hasSlot, !Task.isCancelled else {
            await recorder.release(job)
            await state.finished(nil, releasingSlot: hasSlot)
            return
        }
        // A long wait for its slot leaves time for an operator to cancel: check before calling.
        if wait > .seconds(1), (try? await store.stillHeld(job, workerID: configuration.workerID)) == false {
            await state.settled([job.id])
            await state.finished(nil, releasingSlot: true)
            return
        }
        let startedAt = Date()
        let callStarted = clock.now
        let result = await call(job)
        let duration = clock.now - callStarted
        if case .failure(let error) = result, error.kind == .cancelled || Task.isCancelled {
            // The grace period ended mid-call, or the claim lapsed before a request went out: the
            // lease rescues the job (the audit shows the lost call if one was made).
            await state.settled([job.id])
            await state.finished(nil, releasingSlot: true)
            return
        }
        let record = Self.decide(
            job, result: result, policy: configuration.retryPolicy, random: random(),
            startedAt: startedAt, finishedAt: Date())
        let errorClass: CognitoError.ErrorClass? = if case .failure(let error) = result { error.errorClass } else { nil }
        metrics.record(record, errorClass: errorClass, duration: duration)
        switch record.outcome {
        case .throttled where errorClass == .throttled:
            if let throttleReporter, let key = job.rateKey {
                await throttleReporter.report(key: key)
            } else {
                await limiter.recordThrottle()
            }
        case .succeeded where throttleReporter == nil:
            // The shared bucket climbs back by itself (CUBIC, by time since the last cut).
            await limiter.recordSuccess()
        default: break
        }
        logger.debug(
            "call finished",
            metadata: [
                "job.id": "\(job.id)", "user": "\(configuration.logUsernames ? job.username : UsernameMask.mask(job.username))",
                "duration_ms": "\(Int64(duration / .milliseconds(1)))", "outcome": "\(record.outcome.rawValue)", "state": "\(record.newState.rawValue)",
                "error.code": "\(record.errorCode ?? "")", "request_id": "\(record.requestID ?? "")",
            ])
        await recorder.add(record)
        // One hop for the slot and the job: the actor is shared by every call of the worker.
        await state.finished(record.newState, releasingSlot: true)
    }

    /// The Cognito call. Data another system inserted that Cognito would refuse anyway (the
    /// database's checks are looser than the service model) fails without a call.
    private func call(_ job: ClaimedJob) async -> Result<CognitoResponse, CognitoError> {
        let pool: UserPoolID
        let username: Username
        let metadata: ClientMetadata?
        let role: PoolRole?
        do {
            pool = try UserPoolID(job.userPoolID)
            username = try Username(job.username)
            metadata = try job.clientMetadata.map { try ClientMetadata($0) }
            role = try job.roleARN.map {
                PoolRole(
                    arn: try RoleARN($0, field: "pool_roles.role_arn"),
                    externalID: try job.externalID.map { try ExternalID($0, field: "pool_roles.external_id") })
            }
        } catch {
            return .failure(CognitoError(.invalidInput, message: "\(error)", errorClass: .permanent, operation: "AdminResetUserPassword"))
        }
        do {
            return .success(
                try await cognito.adminResetUserPassword(
                    userPoolID: pool, username: username, clientMetadata: metadata, role: role,
                    beforeAttempt: { await self.claimStillOurs(job) }))
        } catch {
            return .failure(error)
        }
    }

    /// Asked before every request of a call, retries included. A worker frozen (SIGSTOP, a
    /// stalled VM) or cut off from the database past its lease may find its job rescued and done
    /// elsewhere: when the lease may have run out by this worker's clock, the claim is renewed in
    /// the database first, and the call goes out only if it is still this worker's.
    func claimStillOurs(_ job: ClaimedJob) async -> Bool {
        let margin = min(.seconds(5), configuration.lease / 5)
        if await state.leaseLasts(job.id, lease: configuration.lease, margin: margin) { return true }
        let sentAt = clock.now
        guard (try? await store.renewLease(job, workerID: configuration.workerID, lease: configuration.lease)) == true else {
            logger.notice("a claim lapsed before its call; leaving the job to lease rescue", metadata: ["job.id": "\(job.id)"])
            return false
        }
        await state.renewed([job.id], sentAt: sentAt)
        // A renewal that itself took most of a lease leaves too little of it.
        return await state.leaseLasts(job.id, lease: configuration.lease, margin: margin)
    }

    /// Text from elsewhere as the schema takes it: no NUL (PostgreSQL text cannot hold one), at
    /// most `limit` code points (what `char_length` counts).
    static func storable(_ text: String, limit: Int) -> String {
        var scalars = String.UnicodeScalarView()
        var count = 0
        for scalar in text.unicodeScalars where scalar != "\u{0}" {
            guard count < limit else { break }
            scalars.append(scalar)
            count += 1
        }
        return String(scalars)
    }

    /// What a call's result means for its job (docs/design.md, "Retry"; `JobRetryPolicy`).
    static func decide(
        _ job: ClaimedJob, result: Result<CognitoResponse, CognitoError>, policy: JobRetryPolicy, random: Double,
        startedAt: Date, finishedAt: Date
    ) -> JobRecord {
        func record(
            _ outcome: AttemptOutcome, _ state: JobState, delay: Duration = .zero, givesBack: Bool = false,
            error: CognitoError? = nil, requestID: String? = nil
        ) -> JobRecord {
            JobRecord(
                job: job, outcome: outcome, newState: state, retryDelay: delay, givesBackAttempt: givesBack,
                errorCode: error.map { storable($0.code, limit: 200) }, errorMessage: error.map { storable($0.message, limit: 2000) },
                requestID: (requestID ?? error?.requestID).map { storable($0, limit: 200) },
                startedAt: startedAt, finishedAt: finishedAt)
        }
        let attemptsLeft = job.attempt < job.maxAttempts
        switch result {
        case .success(let response):
            return record(.succeeded, .succeeded, requestID: response.requestID)
        case .failure(let error):
            switch error.errorClass {
            case .throttled:
                return record(.throttled, .retrying, delay: policy.throttleDelay(unitRandom: random), givesBack: true, error: error)
            case .throttledLong:
                return attemptsLeft
                    ? record(.throttled, .retrying, delay: policy.limitExceededDelay(unitRandom: random), error: error)
                    : record(.throttled, .failed, error: error)
            case .transient, .credentials:
                // Rejected credentials are retried like outages: a rotated or expired key must not
                // fail the whole queue at once; attempts still bound it.
                let outcome: AttemptOutcome = error.errorClass == .credentials ? .credentialsError : .transientError
                return attemptsLeft
                    ? record(outcome, .retrying, delay: policy.backoff(afterAttempt: job.attempt, unitRandom: random), error: error)
                    : record(outcome, .failed, error: error)
            default:
                return record(.permanentError, .failed, error: error)
            }
        }
    }
}
