import Foundation

/// The shared files of the AWS CLI and SDKs: `AWS_SHARED_CREDENTIALS_FILE` (default
/// `~/.aws/credentials`, sections named by profile) and `AWS_CONFIG_FILE` (default
/// `~/.aws/config`, sections `[profile NAME]` except `[default]`). Profile from `AWS_PROFILE`.
public struct SharedFilesCredentialProvider: CredentialProvider {
    let environment: [String: String]
    public var name: String { "shared files" }

    public init(environment: [String: String]) { self.environment = environment }

    /// The profile named by `AWS_PROFILE`, if any.
    var namedProfile: String? { environment["AWS_PROFILE"].flatMap { $0.isEmpty ? nil : $0 } }
    var profile: String { namedProfile ?? "default" }

    /// Profile settings that need machinery this project does not have. A profile using them is
    /// refused rather than skipped, so the chain never silently falls through to another identity.
    static let unsupportedSettings = [
        "role_arn", "source_profile", "credential_source", "credential_process", "sso_session", "sso_start_url",
        "web_identity_token_file",
    ]

    var home: String { environment["HOME"] ?? NSHomeDirectory() }

    func expand(_ path: String) -> String {
        path.hasPrefix("~/") ? home + path.dropFirst() : path
    }

    var credentialsPath: String { expand(environment["AWS_SHARED_CREDENTIALS_FILE"] ?? "~/.aws/credentials") }
    var configPath: String { expand(environment["AWS_CONFIG_FILE"] ?? "~/.aws/config") }

    /// The profile's section of the config file.
    func configSection() throws(CredentialError) -> [String: String]? {
        let section = profile == "default" ? "default" : "profile \(profile)"
        return try INIFile.load(path: configPath)?.sections[section]
    }

    /// The region the profile names, if any.
    public func region() -> String? {
        (try? configSection())?["region"]
    }

    public func credentials() async throws(CredentialError) -> AWSCredentials? {
        // The credentials file wins over the config file, as in the SDKs.
        let candidates = [try INIFile.load(path: credentialsPath)?.sections[profile], try configSection()]
        for case let section? in candidates {
            if let setting = Self.unsupportedSettings.first(where: { section[$0] != nil }) {
                throw CredentialError(
                    provider: name, message: "profile \(profile) uses \(setting), which is not supported; use keys, web identity or instance credentials")
            }
            let key = section["aws_access_key_id"]
            let secret = section["aws_secret_access_key"]
            if key == nil, secret == nil { continue }
            guard let key, let secret, !key.isEmpty, !secret.isEmpty else {
                throw CredentialError(provider: name, message: "profile \(profile) has only half a key pair")
            }
            return AWSCredentials(
                accessKeyID: key, secretAccessKey: secret, sessionToken: section["aws_session_token"],
                source: "profile \(profile)")
        }
        if let namedProfile, candidates.allSatisfy({ $0 == nil }) {
            throw CredentialError(provider: name, message: "AWS_PROFILE names profile \(namedProfile), which neither file defines")
        }
        return nil
    }
}

/// systemd's `LoadCredential=`: the file `aws-credentials` in `$CREDENTIALS_DIRECTORY`, in the
/// shared-credentials INI format (profile `AWS_PROFILE` or `default`). Secrets stay out of the
/// environment, where `systemctl show` and /proc could reveal them.
public struct SystemdCredentialProvider: CredentialProvider {
    public static let fileName = "aws-credentials"
    let environment: [String: String]
    public var name: String { "systemd credentials" }

    public init(environment: [String: String]) { self.environment = environment }

    public func credentials() async throws(CredentialError) -> AWSCredentials? {
        guard let folder = environment["CREDENTIALS_DIRECTORY"], !folder.isEmpty else { return nil }
        let path = URL(fileURLWithPath: folder).appending(path: Self.fileName).path
        guard FileManager.default.fileExists(atPath: path) else { return nil }
        // A blank file means "no keys here" (the unit's SetCredential= fallback when an operator
        // uses instance or container credentials instead): the chain moves on.
        if let contents = FileManager.default.contents(atPath: path),
            String(decoding: contents, as: UTF8.self).allSatisfy(\.isWhitespace)
        {
            return nil
        }
        var files = environment
        files["AWS_SHARED_CREDENTIALS_FILE"] = path
        files["AWS_CONFIG_FILE"] = "/nonexistent"
        let found: AWSCredentials?
        do {
            found = try await SharedFilesCredentialProvider(environment: files).credentials()
        } catch {
            throw CredentialError(provider: name, message: error.message)
        }
        guard let found else {
            throw CredentialError(provider: name, message: "\(Self.fileName) has no keys for profile \(environment["AWS_PROFILE"] ?? "default")")
        }
        return AWSCredentials(
            accessKeyID: found.accessKeyID, secretAccessKey: found.secretAccessKey, sessionToken: found.sessionToken,
            source: name)
    }
}
