import Crypto
public import Foundation
import Synchronization

/// An HTTP request as the signer sees it.
public struct SigningRequest: Sendable {
    public var method: String
    /// The path as sent, not yet URI-encoded (e.g. `/` or `/example space/`).
    public var path: String
    /// Query parameters, decoded, in any order.
    public var query: [(name: String, value: String)]
    /// Headers in the order they are sent; the signer needs `Host` among them.
    public var headers: [(name: String, value: String)]
    public var body: [UInt8]

    public init(
        method: String, path: String = "/", query: [(name: String, value: String)] = [],
        headers: [(name: String, value: String)], body: [UInt8] = []
    ) {
        self.method = method
        self.path = path
        self.query = query
        self.headers = headers
        self.body = body
    }
}

/// What signing produced: the headers to add (in order) and the intermediate strings, which the
/// official test suite compares one by one.
public struct SigningResult: Sendable {
    public let canonicalRequest: String
    public let stringToSign: String
    public let signature: String
    public let authorization: String
    /// `X-Amz-Security-Token` (if any), `X-Amz-Date`, `x-amz-content-sha256` (if asked) and
    /// `Authorization`, to append to the request's headers in this order.
    public let addedHeaders: [(name: String, value: String)]
}

/// AWS Signature Version 4 for header-signed requests (what the SDKs send; no pre-signed URLs).
public struct SigV4Signer: Sendable {
    public struct Options: Sendable {
        /// Remove `.`/`..` segments and empty segments from the path (every service but S3).
        public var normalizePath = true
        /// Sign `x-amz-security-token` (the SDKs do); false adds it unsigned after signing.
        public var signSessionToken = true
        /// Add and sign an `x-amz-content-sha256` header (S3 style); Cognito does not need it.
        public var addContentSHA256Header = false

        public init(normalizePath: Bool = true, signSessionToken: Bool = true, addContentSHA256Header: Bool = false) {
            self.normalizePath = normalizePath
            self.signSessionToken = signSessionToken
            self.addContentSHA256Header = addContentSHA256Header
        }
    }

    public let region: String
    public let service: String
    public let options: Options

    public init(region: String, service: String, options: Options = Options()) {
        self.region = region
        self.service = service
        self.options = options
    }

    /// Signs `request` with `credentials` at `date` (always rendered in UTC). `keys`, when given,
    /// remembers the derived signing key per day, so the four-HMAC derivation runs once a day.
    public func sign(_ request: SigningRequest, credentials: AWSCredentials, date: Date, keys: SigningKeyCache? = nil) -> SigningResult {
        let (amzDate, day) = Self.timestamps(date)
        let payloadHash = Self.hexSHA256(request.body)

        var added: [(name: String, value: String)] = []
        var signed = request.headers
        if let token = credentials.sessionToken {
            added.append(("X-Amz-Security-Token", token))
            if options.signSessionToken { signed.append(("X-Amz-Security-Token", token)) }
        }
        added.append(("X-Amz-Date", amzDate))
        signed.append(("X-Amz-Date", amzDate))
        if options.addContentSHA256Header {
            added.append(("x-amz-content-sha256", payloadHash))
            signed.append(("x-amz-content-sha256", payloadHash))
        }

        let (canonicalHeaders, signedHeaders) = Self.canonicalHeaders(signed)
        let canonicalRequest = [
            request.method.uppercased(),
            canonicalPath(request.path),
            Self.canonicalQuery(request.query),
            canonicalHeaders,
            signedHeaders,
            payloadHash,
        ].joined(separator: "\n")
        let scope = "\(day)/\(region)/\(service)/aws4_request"
        let stringToSign = ["AWS4-HMAC-SHA256", amzDate, scope, Self.hexSHA256(Array(canonicalRequest.utf8))]
            .joined(separator: "\n")

        let key =
            keys?.key(credentials: credentials, day: day, region: region, service: service)
            ?? Self.signingKey(secret: credentials.secretAccessKey, day: day, region: region, service: service)
        let signature = HMAC<SHA256>.authenticationCode(for: Array(stringToSign.utf8), using: key).hex
        let authorization =
            "AWS4-HMAC-SHA256 Credential=\(credentials.accessKeyID)/\(scope), "
            + "SignedHeaders=\(signedHeaders), Signature=\(signature)"
        added.append(("Authorization", authorization))
        return SigningResult(
            canonicalRequest: canonicalRequest, stringToSign: stringToSign, signature: signature,
            authorization: authorization, addedHeaders: added)
    }

    /// `HMAC(HMAC(HMAC(HMAC("AWS4" + secret, day), region), service), "aws4_request")`.
    static func signingKey(secret: String, day: String, region: String, service: String) -> SymmetricKey {
        var key = SymmetricKey(data: Array("AWS4\(secret)".utf8))
        for part in [day, region, service, "aws4_request"] {
            key = SymmetricKey(data: Data(HMAC<SHA256>.authenticationCode(for: Array(part.utf8), using: key)))
        }
        return key
    }

    // MARK: Canonical forms

    func canonicalPath(_ path: String) -> String {
        var path = path.isEmpty ? "/" : path
        if options.normalizePath {
            var segments: [Substring] = []
            for segment in path.split(separator: "/", omittingEmptySubsequences: true) {
                switch segment {
                case ".": continue
                case "..": _ = segments.popLast()
                default: segments.append(segment)
                }
            }
            let trailing = path.hasSuffix("/") && !segments.isEmpty ? "/" : ""
            path = "/" + segments.joined(separator: "/") + trailing
        }
        return path.split(separator: "/", omittingEmptySubsequences: false)
            .map { Self.uriEncode(String($0)) }
            .joined(separator: "/")
    }

    static func canonicalQuery(_ query: [(name: String, value: String)]) -> String {
        let encoded: [(name: String, value: String)] = query.map { (uriEncode($0.name), uriEncode($0.value)) }
        let sorted = encoded.sorted { left, right in
            left.name == right.name ? left.value < right.value : left.name < right.name
        }
        return sorted.map { "\($0.name)=\($0.value)" }.joined(separator: "&")
    }

    /// Lower-case names, sorted; values trimmed with inner whitespace runs collapsed; repeated
    /// headers joined with commas in the order sent.
    static func canonicalHeaders(_ headers: [(name: String, value: String)]) -> (String, String) {
        var byName: [String: [String]] = [:]
        for (name, value) in headers {
            // Most values are ASCII without any white space: nothing to trim or collapse.
            let plain = value.utf8.allSatisfy { $0 > 0x20 && $0 < 0x7F }
            let collapsed =
                plain
                ? value
                : value.split(whereSeparator: { $0 == " " || $0 == "\t" || $0.isNewline })
                    .joined(separator: " ")
            byName[name.lowercased(), default: []].append(collapsed)
        }
        let names = byName.keys.sorted()
        let canonical = names.map { "\($0):\(byName[$0]!.joined(separator: ","))\n" }.joined()
        return (canonical, names.joined(separator: ";"))
    }

    /// RFC 3986 percent-encoding of everything but the unreserved characters, upper-case hex.
    static func uriEncode(_ text: String) -> String {
        var encoded = ""
        for byte in text.utf8 {
            if unreserved.contains(byte) {
                encoded.unicodeScalars.append(Unicode.Scalar(byte))
            } else {
                encoded += String(format: "%%%02X", byte)
            }
        }
        return encoded
    }

    private static let unreserved = Set(Array("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-._~".utf8))

    static func hexSHA256(_ bytes: [UInt8]) -> String { SHA256.hash(data: bytes).hex }

    /// `yyyyMMdd'T'HHmmss'Z'` and `yyyyMMdd` in UTC, whatever the machine's time zone.
    static func timestamps(_ date: Date) -> (amzDate: String, day: String) {
        var seconds = time_t(date.timeIntervalSince1970.rounded(.down))
        var parts = tm()
        gmtime_r(&seconds, &parts)
        func two(_ value: Int32) -> String { value < 10 ? "0\(value)" : "\(value)" }
        let day = "\(parts.tm_year + 1900)" + two(parts.tm_mon + 1) + two(parts.tm_mday)
        return (day + "T" + two(parts.tm_hour) + two(parts.tm_min) + two(parts.tm_sec) + "Z", day)
    }
}

extension Sequence where Element == UInt8 {
    /// Lower-case hex, without `String(format:)` (slow on Linux, and this runs several times per call).
    var hex: String {
        let digits = Array("0123456789abcdef".utf8)
        var bytes: [UInt8] = []
        bytes.reserveCapacity(64)
        for byte in self {
            bytes.append(digits[Int(byte >> 4)])
            bytes.append(digits[Int(byte & 0x0F)])
        }
        return String(decoding: bytes, as: UTF8.self)
    }
}

/// Derived SigV4 signing keys, one per credentials, day, region and service (a key is valid for
/// one day). Holds only derived keys, never the secret itself, and never prints them.
public final class SigningKeyCache: Sendable {
    /// The derivation's inputs; compared in memory only (no hashing on every call), never printed.
    private struct Inputs: Hashable {
        let secret: String
        let day: String
        let region: String
        let service: String
    }

    private let entries = Mutex<[Inputs: SymmetricKey]>([:])

    public init() {}

    func key(credentials: AWSCredentials, day: String, region: String, service: String) -> SymmetricKey {
        let inputs = Inputs(secret: credentials.secretAccessKey, day: day, region: region, service: service)
        if let key = entries.withLock({ $0[inputs] }) { return key }
        let key = SigV4Signer.signingKey(secret: inputs.secret, day: day, region: region, service: service)
        entries.withLock { entries in
            if entries.count > 64 { entries.removeAll() }  // old days and rotated keys
            entries[inputs] = key
        }
        return key
    }
}
