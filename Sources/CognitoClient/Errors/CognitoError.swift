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

    /// Our codes for failures the service did not name.
    /// The input breaks a rule of the service model (or names a region no endpoint exists for).
    public static let invalidInput = "InvalidInput"
    /// STS refused to let us assume the pool's role: the pool's jobs fail, nothing is retried.
    public static let assumeRoleDenied = "AssumeRoleDenied"
    /// No credentials are configured at all.
    public static let noCredentials = "NoCredentials"
    /// A credentials source (STS, container endpoint, instance metadata) could not be reached.
    public static let credentialsUnavailable = "CredentialsUnavailable"
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

    public init(code: String, message: String, errorClass: ErrorClass, httpStatus: Int? = nil, requestID: String? = nil, operation: String) {
        self.code = code
        self.message = message
        self.errorClass = errorClass
        self.httpStatus = httpStatus
        self.requestID = requestID
        self.operation = operation
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

    /// The class of a service error, from its code and HTTP status (reference table; unknown
    /// codes: 5xx transient, 4xx permanent).
    public static func classify(code: String, httpStatus: Int) -> Self {
        if code == "LimitExceededException" { return .throttledLong }
        if throttlingCodes.contains(code) || httpStatus == 429 { return .throttled }
        if credentialCodes.contains(code) { return .credentials }
        if transientCodes.contains(code) || [500, 502, 503, 504].contains(httpStatus) { return .transient }
        return httpStatus >= 500 ? .transient : .permanent
    }
}
