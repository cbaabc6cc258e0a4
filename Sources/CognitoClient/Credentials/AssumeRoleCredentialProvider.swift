public import Foundation

/// Temporary credentials for an IAM role in another account: a SigV4-signed STS `AssumeRole`
/// call made with the worker's own credentials, at the regional STS endpoint.
///
/// STS refusing the role (403 `AccessDenied`, or any other answer that is not the service
/// having a bad moment) is `CredentialError.Kind.refused`: the pool's jobs fail with
/// `AssumeRoleDenied`. STS unreachable, 5xx or throttling is `unreachable`: transient. STS
/// rejecting the worker's own keys (`ExpiredToken`, `InvalidClientTokenId`...) is a credentials
/// error: they are fetched again and the job is retried.
public struct AssumeRoleCredentialProvider: CredentialProvider {
    public let role: PoolRole
    let base: CachingCredentialProvider
    let transport: HTTPTransport
    let endpoint: URL
    let region: String
    let now: @Sendable () -> Date
    let sessionName: String
    let keys = SigningKeyCache()
    public var name: String { "assume role" }

    /// `region` signs the STS call and picks its regional endpoint (unless `endpoint` overrides it).
    public init(
        role: PoolRole, base: CachingCredentialProvider, transport: HTTPTransport, stsEndpoint: STSEndpoint, region: String,
        sessionName: String = "cognito-reset", now: @escaping @Sendable () -> Date = Date.init
    ) {
        self.role = role
        self.base = base
        self.transport = transport
        self.endpoint = stsEndpoint.url(region: region)
        self.region = region
        self.sessionName = sessionName
        self.now = now
    }

    public func credentials() async throws(CredentialError) -> AWSCredentials? {
        let own = try await base.credentials()
        var form = [
            ("Action", "AssumeRole"), ("Version", "2011-06-15"), ("RoleArn", role.arn.rawValue),
            ("RoleSessionName", sessionName), ("DurationSeconds", "3600"),
        ]
        if let externalID = role.externalID { form.append(("ExternalId", externalID.rawValue)) }
        let body = Array(form.map { "\($0.0)=\(SigV4Signer.uriEncode($0.1))" }.joined(separator: "&").utf8)
        var headers: [(name: String, value: String)] = [
            ("Content-Type", "application/x-www-form-urlencoded; charset=utf-8"), ("Accept", "application/xml"),
            ("Host", CognitoIdentityProviderClient.hostHeader(endpoint)),
        ]
        let request = SigningRequest(method: "POST", path: endpoint.path.isEmpty ? "/" : endpoint.path, headers: headers, body: body)
        headers += SigV4Signer(region: region, service: "sts").sign(request, credentials: own, date: now(), keys: keys).addedHeaders
        let response: HTTPResponseData
        do {
            response = try await transport.send(method: "POST", url: endpoint, headers: headers, body: body)
        } catch {
            throw .unreachable(name, "STS", error)
        }
        let fields = SimpleXML.fields(in: response.body, named: ["AccessKeyId", "SecretAccessKey", "SessionToken", "Expiration", "Code"])
        guard response.status == 200 else {
            // The message may quote the caller's ARN: only the code is kept.
            let code = fields["Code"].map { SafeText.escaped(String($0.prefix(100))) } ?? "HTTP \(response.status)"
            if let rawCode = fields["Code"], CognitoError.ErrorClass.credentialCodes.contains(rawCode) {
                // The worker's own keys were rejected (expired, rotated): not the role's fault.
                // They are fetched again for the next call; the job is retried like an outage.
                await base.invalidate()
                throw CredentialError(provider: name, message: "STS rejected the worker's own credentials: \(code)")
            }
            var error = CredentialError.answered(
                name, status: response.status, code: fields["Code"],
                "STS refused AssumeRole on \(role.arn): \(code)")
            if !error.isUnreachable { error.kind = .refused }
            throw error
        }
        guard let key = fields["AccessKeyId"], let secret = fields["SecretAccessKey"], let token = fields["SessionToken"],
            !key.isEmpty, !secret.isEmpty
        else {
            throw CredentialError(provider: name, message: "STS answered AssumeRole on \(role.arn) without credentials", isUnreachable: true)
        }
        return AWSCredentials(
            accessKeyID: key, secretAccessKey: secret, sessionToken: token,
            expiration: fields["Expiration"].flatMap(Timestamps.parse), source: "assume role \(role.arn.accountID)")
    }
}

/// The credentials for each pool role, cached and refreshed before they expire (one STS call
/// however many calls wait: `CachingCredentialProvider`). A role STS refused is remembered for
/// a minute, so a queue full of that pool's jobs fails fast instead of storming STS.
public actor RoleCredentialCache {
    struct Key: Hashable {
        let role: PoolRole
        let region: String
    }

    let base: CachingCredentialProvider
    let transport: HTTPTransport
    let stsEndpoint: STSEndpoint
    let now: @Sendable () -> Date
    let refusalMemory: TimeInterval
    private var providers: [Key: CachingCredentialProvider] = [:]
    private var refusals: [Key: (until: Date, error: CredentialError)] = [:]

    public init(
        base: CachingCredentialProvider, transport: HTTPTransport, stsEndpoint: STSEndpoint,
        refusalMemory: Duration = .seconds(60), now: @escaping @Sendable () -> Date = Date.init
    ) {
        self.base = base
        self.transport = transport
        self.stsEndpoint = stsEndpoint
        self.refusalMemory = refusalMemory / .seconds(1)
        self.now = now
    }

    /// Credentials to call a pool in `region` with, through `role`.
    public func credentials(for role: PoolRole, region: String) async throws(CredentialError) -> AWSCredentials {
        let key = Key(role: role, region: region)
        if let refusal = refusals[key] {
            if refusal.until > now() { throw refusal.error }
            refusals[key] = nil
        }
        do {
            return try await provider(key).credentials()
        } catch {
            if error.kind == .refused { refusals[key] = (now().addingTimeInterval(refusalMemory), error) }
            throw error
        }
    }

    /// Forgets the role's credentials (the service rejected them), so the next call asks STS.
    public func invalidate(_ role: PoolRole, region: String) async {
        await providers[Key(role: role, region: region)]?.invalidate()
    }

    private func provider(_ key: Key) -> CachingCredentialProvider {
        if let existing = providers[key] { return existing }
        let provider = CachingCredentialProvider(
            base: AssumeRoleCredentialProvider(
                role: key.role, base: base, transport: transport, stsEndpoint: stsEndpoint, region: key.region, now: now),
            now: now)
        providers[key] = provider
        return provider
    }
}
