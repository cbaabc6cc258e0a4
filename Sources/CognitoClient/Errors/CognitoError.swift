/// A failed Cognito call: the service's error code and message, the HTTP status and request id,
/// and the class that tells the caller what to do about it. Never contains a secret.
public struct CognitoError: Error, Sendable, CustomStringConvertible {
    /// What the caller should do (docs/design.md, "What a Cognito answer means").
    public struct ErrorClass: Hashable, Sendable, CustomStringConvertible {
        public let name: String
        public var description: String { name }

        /// TooManyRequestsException and friends: back off, slow the shared rate, try again.
        public static let throttled = ErrorClass(name: "throttled")
        /// LimitExceededException: a per-user or per-attempt limit; retry only after minutes.
        public static let throttledLong = ErrorClass(name: "throttledLong")
        /// 5xx, timeouts, resets, refused connections: retry with backoff.
        public static let transient = ErrorClass(name: "transient")
        /// Expired or invalid credentials: refresh them once; then fail loudly.
        public static let credentials = ErrorClass(name: "credentials")
        /// The request cannot succeed as it is: fail the job with code and message.
        public static let permanent = ErrorClass(name: "permanent")
    }

    // Our codes for failures the service did not name.

    /// The input breaks a rule of the service model (or names a region no endpoint exists for).
    public static let invalidInput = "InvalidInput"
    /// STS refused to let us assume the pool's role: the pool's jobs fail, nothing is retried.
    public static let assumeRoleDenied = "AssumeRoleDenied"
    /// No credentials are configured at all.
    public static let noCredentials = "NoCredentials"
    /// A credentials source (STS, container endpoint, instance metadata) could not be reached.
    public static let credentialsUnavailable = "CredentialsUnavailable"
    /// No answer within the request's timeout.
    public static let timeout = "Timeout"
    /// The connection failed (refused, reset, TLS) before an answer came.
    public static let networkError = "NetworkError"
    /// An answer that is not what the service's protocol says it sends.
    public static let invalidResponse = "InvalidResponse"
    /// A redirect, which the service never sends: refused rather than followed.
    public static let redirect = "Redirect"
    /// The call was given up before a request went out (its task was cancelled, or its caller's
    /// `beforeAttempt` said no): the outcome is unknown only if an earlier attempt was sent.
    public static let cancelled = "Cancelled"

    /// The normalised error type (e.g. `UserNotFoundException`), or for failures without one
    /// `HTTP <status>`, `NetworkError`, `Timeout`, `InvalidResponse`, or one of the codes above.
    public let code: String
    public let message: String
    public let errorClass: ErrorClass
    public let httpStatus: Int?
    public let requestID: String?
    /// The operation that failed, e.g. `AdminResetUserPassword`.
    public let operation: String
    /// Whose failure it is: the service's (or the network's), or one of ours. Callers decide by
    /// this and by `errorClass`, never by the text of `code` or `message`.
    public let kind: Kind

    /// Failures of ours, before or instead of a request: each has its code (above) for the
    /// audit and the logs.
    public enum Kind: Sendable, Equatable {
        /// The service answered with an error, or no answer came (HTTP status, network, timeout).
        case service
        /// Given up before a request went out (`cancelled`).
        case cancelled
        /// The input breaks a rule of the service model (`invalidInput`).
        case invalidInput
        /// No credentials are configured at all (`noCredentials`).
        case noCredentials
        /// A credentials source could not be reached (`credentialsUnavailable`).
        case credentialsUnavailable
        /// STS refused the pool's role (`assumeRoleDenied`).
        case assumeRoleDenied

        /// The code such a failure carries; nil for the service's own.
        var code: String? {
            switch self {
            case .service: nil
            case .cancelled: CognitoError.cancelled
            case .invalidInput: CognitoError.invalidInput
            case .noCredentials: CognitoError.noCredentials
            case .credentialsUnavailable: CognitoError.credentialsUnavailable
            case .assumeRoleDenied: CognitoError.assumeRoleDenied
            }
        }
    }

    /// An error the service (or the network) gave.
    public init(code: String, message: String, errorClass: ErrorClass, httpStatus: Int? = nil, requestID: String? = nil, operation: String) {
        self.code = code
        self.message = message
        self.errorClass = errorClass
        self.httpStatus = httpStatus
        self.requestID = requestID
        self.operation = operation
        self.kind = .service
    }

    /// A failure of ours (`kind` is not `.service`), with the code that goes with it.
    public init(_ kind: Kind, message: String, errorClass: ErrorClass, operation: String) {
        self.code = kind.code ?? "Unknown"
        self.message = message
        self.errorClass = errorClass
        self.httpStatus = nil
        self.requestID = nil
        self.operation = operation
        self.kind = kind
    }

    public var description: String {
        var context: [String] = []
        if let httpStatus, code != "HTTP \(httpStatus)" { context.append("HTTP \(httpStatus)") }
        if let requestID { context.append("request id \(requestID)") }
        let suffix = context.isEmpty ? "" : " (\(context.joined(separator: ", ")))"
        let text = message.isEmpty ? code : "\(code): \(message)"
        return "\(operation) failed: \(text)\(suffix)"
    }
}

extension CognitoError.ErrorClass {
    static let throttlingCodes: Set<String> = [
        "Throttling", "ThrottlingException", "ThrottledException", "RequestThrottledException",
        "TooManyRequestsException", "ProvisionedThroughputExceededException", "TransactionInProgressException",
        "RequestLimitExceeded", "BandwidthLimitExceeded", "RequestThrottled", "SlowDown",
        "PriorRequestNotComplete", "EC2ThrottledException",
    ]
    static let credentialCodes: Set<String> = [
        "ExpiredToken", "ExpiredTokenException", "InvalidClientTokenId", "SignatureDoesNotMatch",
        "UnrecognizedClientException", "AccessDeniedException", "IncompleteSignature", "RequestExpired",
        "InvalidSignatureException",
    ]
    static let transientCodes: Set<String> = [
        "InternalErrorException", "InternalFailure", "InternalServerError", "ServiceUnavailable",
        "ServiceUnavailableException", "RequestTimeout", "RequestTimeoutException",
    ]

    /// The class of a service error, from its code and HTTP status (the table in docs/design.md,
    /// "What a Cognito answer means"; unknown codes: 5xx transient, 4xx permanent).
    public static func classify(code: String, httpStatus: Int) -> Self {
        if code == "LimitExceededException" { return .throttledLong }
        if throttlingCodes.contains(code) || httpStatus == 429 { return .throttled }
        if credentialCodes.contains(code) { return .credentials }
        if transientCodes.contains(code) || [500, 502, 503, 504].contains(httpStatus) { return .transient }
        return httpStatus >= 500 ? .transient : .permanent
    }
}
