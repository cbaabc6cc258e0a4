public import Foundation

/// An AWS access key pair, with a session token for temporary credentials.
///
/// `description` never shows the secret key or the session token: credentials can be logged or
/// put in an error by mistake and still leak nothing but the access key id.
public struct AWSCredentials: Sendable, Equatable, CustomStringConvertible, CustomDebugStringConvertible {
    public let accessKeyID: String
    public let secretAccessKey: String
    public let sessionToken: String?
    /// When temporary credentials stop working; nil for long-lived keys.
    public let expiration: Date?
    /// Which provider of the chain found them (e.g. "environment", "imds"), for operators.
    public let source: String

    public init(accessKeyID: String, secretAccessKey: String, sessionToken: String? = nil, expiration: Date? = nil, source: String) {
        self.accessKeyID = accessKeyID
        self.secretAccessKey = secretAccessKey
        self.sessionToken = sessionToken.flatMap { $0.isEmpty ? nil : $0 }
        self.expiration = expiration
        self.source = source
    }

    public var description: String {
        let temporary = sessionToken == nil ? "" : ", temporary"
        return "AWSCredentials(\(accessKeyID), from \(source)\(temporary))"
    }

    public var debugDescription: String { description }
}
