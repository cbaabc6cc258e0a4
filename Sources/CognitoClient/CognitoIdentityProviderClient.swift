public import Foundation
public import Logging

/// What the client needs from the outside world, injectable so tests control time and chance.
public struct ClientDependencies: Sendable {
    public var now: @Sendable () -> Date
    /// A number in [0, 1) for backoff jitter.
    public var random: @Sendable () -> Double
    public var sleep: @Sendable (Duration) async throws -> Void

    public init(
        now: @escaping @Sendable () -> Date = Date.init,
        random: @escaping @Sendable () -> Double = { Double.random(in: 0..<1) },
        sleep: @escaping @Sendable (Duration) async throws -> Void = { try await Task.sleep(for: $0) }
    ) {
        self.now = now
        self.random = random
        self.sleep = sleep
    }
}

/// A successful call: the request id Cognito assigned, for the audit trail.
public struct CognitoResponse: Sendable, Equatable {
    public let requestID: String?
    /// HTTP attempts the call took (1 unless transient errors were retried).
    public let attempts: Int
}

/// Amazon Cognito user pools, the two operations this project needs, over raw HTTPS (awsJson1_1).
///
/// `AdminResetUserPassword` is SigV4-signed; `ChangePassword` is unsigned (the access token
/// authenticates it), exactly as the service model says. Inputs are validated against the model
/// before anything is sent. Transient failures are retried quickly (botocore standard mode),
/// throttling is returned to the caller at once, and rejected credentials are refreshed once.
public final class CognitoIdentityProviderClient: Sendable {
    public static let targetPrefix = "AWSCognitoIdentityProviderService."

    public let endpoints: CognitoEndpointResolver
    public let credentials: CachingCredentialProvider
    public let transport: HTTPTransport
    public let retryPolicy: RetryPolicy
    public let retryQuota: RetryQuota
    /// Credentials for pools mapped to an IAM role in another account (STS `AssumeRole`).
    public let roleCredentials: RoleCredentialCache
    let signingKeys = SigningKeyCache()
    let dependencies: ClientDependencies
    let logger: Logger

    public init(
        endpoints: CognitoEndpointResolver, credentials: CachingCredentialProvider, transport: HTTPTransport,
        retryPolicy: RetryPolicy = RetryPolicy(), retryQuota: RetryQuota = RetryQuota(),
        stsEndpoint: STSEndpoint = STSEndpoint(environment: [:]),
        dependencies: ClientDependencies = ClientDependencies(), logger: Logger = Logger(label: "cognito-reset.cognito")
    ) {
        self.endpoints = endpoints
        self.credentials = credentials
        self.roleCredentials = RoleCredentialCache(
            base: credentials, transport: transport, stsEndpoint: stsEndpoint, now: dependencies.now)
        self.transport = transport
        self.retryPolicy = retryPolicy
        self.retryQuota = retryQuota
        self.dependencies = dependencies
        self.logger = logger
    }

    /// Starts a reset: the user goes to RESET_REQUIRED and Cognito sends a code by the pool's
    /// recovery channel. The call goes to the pool's own region (its id says which), signed with
    /// the worker's credentials or, given a `role`, with that role's (STS `AssumeRole`).
    ///
    /// `beforeAttempt`, if given, is asked before every request (retries included); false gives
    /// the call up with `CognitoError.cancelled`.
    public func adminResetUserPassword(
        userPoolID: UserPoolID, username: Username, clientMetadata: ClientMetadata? = nil, role: PoolRole? = nil,
        beforeAttempt: (@Sendable () async -> Bool)? = nil
    ) async throws(CognitoError) -> CognitoResponse {
        let operation = "AdminResetUserPassword"
        let region: RegionName
        do {
            region = try endpoints.region(for: userPoolID)
        } catch {
            throw CognitoError(.invalidInput, message: error.description, errorClass: .permanent, operation: operation)
        }
        var body = JSONBody()
        body.add("UserPoolId", userPoolID.rawValue)
        body.add("Username", username.rawValue)
        body.add("ClientMetadata", clientMetadata?.values)
        return try await call(
            operation, region: region.rawValue, body: body.bytes, signing: role.map { .role($0) } ?? .ownCredentials,
            secrets: [], beforeAttempt: beforeAttempt)
    }

    /// Changes the password of the user the access token belongs to. Unsigned.
    public func changePassword(
        accessToken: Secret, previousPassword: Secret?, proposedPassword: Secret
    ) async throws -> CognitoResponse {
        try Self.validate(accessToken: accessToken)
        if let previousPassword { try Self.validate(password: previousPassword, field: "PreviousPassword") }
        try Self.validate(password: proposedPassword, field: "ProposedPassword")
        let operation = "ChangePassword"
        guard let region = endpoints.configuredRegion ?? Self.region(fromAccessToken: accessToken.revealed) else {
            throw InvalidInput(field: "AccessToken", rule: "names no region; set AWS_REGION")
        }
        var body = JSONBody()
        body.add("PreviousPassword", previousPassword?.revealed)
        body.add("ProposedPassword", proposedPassword.revealed)
        body.add("AccessToken", accessToken.revealed)
        let secrets = [accessToken.revealed, proposedPassword.revealed] + (previousPassword.map { [$0.revealed] } ?? [])
        return try await call(operation, region: region, body: body.bytes, signing: .unsigned, secrets: secrets)
    }

    // MARK: Validation

    static func validate(accessToken: Secret) throws(InvalidInput) {
        let allowed = accessToken.revealed.unicodeScalars.allSatisfy {
            $0.isASCII && (CharacterSet.alphanumerics.contains($0) || "-_=.".unicodeScalars.contains($0))
        }
        guard !accessToken.revealed.isEmpty, allowed else {
            throw InvalidInput(field: "AccessToken", rule: "must be a non-empty token of letters, digits and -_=.")
        }
    }

    static func validate(password: Secret, field: String) throws(InvalidInput) {
        let value = password.revealed
        guard (1...256).contains(value.utf16.count), !value.unicodeScalars.contains(where: { $0.properties.isWhitespace }) else {
            throw InvalidInput(field: field, rule: "must be 1-256 characters without whitespace")
        }
    }

    /// The region in a Cognito access token's issuer (`https://cognito-idp.{region}.amazonaws.com/{pool}`).
    static func region(fromAccessToken token: String) -> String? {
        let parts = token.split(separator: ".")
        guard parts.count == 3 else { return nil }
        var payload = parts[1].replacingOccurrences(of: "-", with: "+").replacingOccurrences(of: "_", with: "/")
        payload += String(repeating: "=", count: (4 - payload.count % 4) % 4)
        guard let data = Data(base64Encoded: payload),
            let claims = (try? JSONSerialization.jsonObject(with: data)) as? [String: Any],
            let issuer = (claims["iss"] as? String).flatMap(URL.init(string:)), let host = issuer.host
        else { return nil }
        let labels = host.split(separator: ".")
        guard labels.count >= 3, labels[0].hasPrefix("cognito-idp") else { return nil }
        return String(labels[1])
    }
}
