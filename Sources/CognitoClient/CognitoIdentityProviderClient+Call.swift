import Foundation
import Logging

extension CognitoIdentityProviderClient {
    /// How a call is signed: not at all (the access token authenticates it), with the worker's
    /// own credentials, or with a pool role's.
    enum Signing {
        case unsigned
        case ownCredentials
        case role(PoolRole)
    }

    /// The credentials `signing` calls for in `region`; nil for an unsigned call.
    private func credentials(for signing: Signing, region: String) async throws(CredentialError) -> AWSCredentials? {
        switch signing {
        case .unsigned: nil
        case .ownCredentials: try await credentials.credentials()
        case .role(let role): try await roleCredentials.credentials(for: role, region: region)
        }
    }

    /// Forgets the credentials `signing` used (the service rejected them), so the next call
    /// fetches; false for an unsigned call, which has none to fetch again.
    private func invalidateCredentials(for signing: Signing, region: String) async -> Bool {
        switch signing {
        case .unsigned: return false
        case .ownCredentials: await credentials.invalidate()
        case .role(let role): await roleCredentials.invalidate(role, region: region)
        }
        return true
    }

    /// One operation: sign (if asked), send, retry transient failures within the policy and the
    /// quota, refresh credentials once if the service rejects them, and decode the outcome.
    ///
    /// `beforeAttempt` is asked before every request, retries included; false ends the call with
    /// `CognitoError.cancelled` and sends nothing more (a worker whose claim may have lapsed).
    func call(
        _ operation: String, region: String, body: [UInt8], signing: Signing, secrets: [String],
        beforeAttempt: (@Sendable () async -> Bool)? = nil
    ) async throws(CognitoError) -> CognitoResponse {
        let url = endpoints.url(region: region)
        var attempt = 0
        var retryCost = 0
        var refreshedCredentials = false
        while true {
            attempt += 1
            if let beforeAttempt, await !beforeAttempt() {
                throw CognitoError(
                    .cancelled, message: "the call was given up before attempt \(attempt)",
                    errorClass: .transient, operation: operation)
            }
            let outcome = await send(operation, url: url, region: region, body: body, signing: signing, secrets: secrets)
            switch outcome {
            case .success(let requestID):
                retryQuota.release(retryCost: retryCost)
                return CognitoResponse(requestID: requestID, attempts: attempt)
            case .failure(let error):
                logger.debug(
                    "cognito call failed",
                    metadata: [
                        "operation": "\(operation)", "attempt": "\(attempt)", "error.code": "\(error.code)",
                        "error.class": "\(error.errorClass)", "request_id": "\(error.requestID ?? "")",
                    ])
                // Keys may have rotated under us: fetch them again, once.
                if error.errorClass == .credentials, !refreshedCredentials, await invalidateCredentials(for: signing, region: region) {
                    refreshedCredentials = true
                    continue
                }
                guard error.errorClass == .transient, attempt < retryPolicy.maxAttempts,
                    let cost = retryQuota.acquire(afterTimeout: error.code == CognitoError.timeout)
                else { throw error }
                retryCost += cost
                let delay = retryPolicy.delay(beforeRetry: attempt, unitRandom: dependencies.random())
                do {
                    try await dependencies.sleep(delay)
                } catch {
                    throw CognitoError(.cancelled, message: "the call was cancelled", errorClass: .transient, operation: operation)
                }
            }
        }
    }

    private func send(
        _ operation: String, url: URL, region: String, body: [UInt8], signing: Signing, secrets: [String]
    ) async -> Result<String?, CognitoError> {
        var headers: [(name: String, value: String)] = [
            ("Content-Type", "application/x-amz-json-1.1"),
            ("X-Amz-Target", Self.targetPrefix + operation),
            ("Host", Self.hostHeader(url)),
        ]
        var allSecrets = secrets
        let found: AWSCredentials?
        do {
            found = try await credentials(for: signing, region: region)
        } catch {
            return .failure(Self.credentialFailure(error, operation: operation))
        }
        if let found {
            allSecrets += [found.secretAccessKey] + (found.sessionToken.map { [$0] } ?? [])
            let signer = SigV4Signer(region: region, service: "cognito-idp")
            let request = SigningRequest(method: "POST", path: url.path.isEmpty ? "/" : url.path, headers: headers, body: body)
            headers += signer.sign(request, credentials: found, date: dependencies.now(), keys: signingKeys).addedHeaders
        }
        let response: HTTPResponseData
        do {
            response = try await transport.send(method: "POST", url: url, headers: headers, body: body)
        } catch {
            let code = error.kind == .timeout ? CognitoError.timeout : CognitoError.networkError
            return .failure(
                CognitoError(
                    code: code, message: "\(error.kind.rawValue) talking to \(url.host ?? "the endpoint")",
                    errorClass: .transient, operation: operation))
        }
        return ErrorResponse.outcome(of: response, operation: operation, secrets: allSecrets)
    }

    /// Unreachable sources (STS, IMDS) are transient; a refused role fails its pool's jobs;
    /// missing or broken configuration is a credentials error.
    static func credentialFailure(_ error: CredentialError, operation: String) -> CognitoError {
        switch error.kind {
        case .unreachable:
            CognitoError(.credentialsUnavailable, message: error.description, errorClass: .transient, operation: operation)
        case .refused:
            CognitoError(.assumeRoleDenied, message: error.description, errorClass: .permanent, operation: operation)
        case .misconfigured:
            CognitoError(.noCredentials, message: error.description, errorClass: .credentials, operation: operation)
        }
    }

    /// `host[:port]`, as signed and sent (the port only when it is not the scheme's default).
    static func hostHeader(_ url: URL) -> String {
        let host = url.host ?? ""
        guard let port = url.port else { return host }
        let isDefault = (url.scheme == "https" && port == 443) || (url.scheme == "http" && port == 80)
        return isDefault ? host : "\(host):\(port)"
    }
}
