public import Foundation

/// Where Cognito calls go and in which region they are signed.
///
/// Region: a pool's calls go to the pool's region (its id starts with it). `AWS_REGION`, then
/// `AWS_DEFAULT_REGION`, then the profile's `region` is the default for calls that name no pool.
/// Endpoint: `AWS_ENDPOINT_URL_COGNITO_IDENTITY_PROVIDER`, then `AWS_ENDPOINT_URL` (plain http
/// allowed, for emulators), else `https://cognito-idp[-fips].{region}.amazonaws.com[.cn]`.
public struct CognitoEndpointResolver: Sendable {
    /// The region configured for this process, if any.
    public let configuredRegion: String?
    public let endpointOverride: URL?
    /// `AWS_USE_FIPS_ENDPOINT=true`.
    public let useFIPS: Bool

    public init(configuredRegion: String?, endpointOverride: URL? = nil, useFIPS: Bool = false) {
        self.configuredRegion = configuredRegion.flatMap { $0.isEmpty ? nil : $0 }
        self.endpointOverride = endpointOverride
        self.useFIPS = useFIPS
    }

    /// From the standard environment variables (and the profile's region, when given).
    public static func fromEnvironment(_ environment: [String: String], profileRegion: String? = nil) throws(InvalidInput) -> Self {
        let region = [environment["AWS_REGION"], environment["AWS_DEFAULT_REGION"], profileRegion]
            .compactMap { $0 }.first { !$0.isEmpty }
        var override: URL?
        for name in ["AWS_ENDPOINT_URL_COGNITO_IDENTITY_PROVIDER", "AWS_ENDPOINT_URL"] {
            guard let value = environment[name], !value.isEmpty else { continue }
            guard let url = URL(string: value), ["http", "https"].contains(url.scheme?.lowercased() ?? ""), url.host != nil else {
                throw InvalidInput(field: name, rule: "must be an http:// or https:// URL")
            }
            override = url
            break
        }
        let fips = environment["AWS_USE_FIPS_ENDPOINT"]?.lowercased() == "true"
        return Self(configuredRegion: region, endpointOverride: override, useFIPS: fips)
    }

    /// The region to sign calls for `pool` with and send them to: the pool's own, whatever the
    /// configured region (that one is only the default for calls that name no pool).
    public func region(for pool: UserPoolID) throws(InvalidInput) -> RegionName {
        do {
            return try RegionName(pool.region)
        } catch {
            throw InvalidInput(
                field: "UserPoolId",
                rule: "must start with its region, e.g. eu-west-1_AbC123 (the part before the last '_' in lowercase letters, digits and '-')")
        }
    }

    /// The endpoint for `region`.
    public func url(region: String) -> URL {
        if let endpointOverride { return endpointOverride }
        let service = useFIPS ? "cognito-idp-fips" : "cognito-idp"
        let suffix = region.hasPrefix("cn-") ? "amazonaws.com.cn" : "amazonaws.com"
        return URL(string: "https://\(service).\(region).\(suffix)/")!
    }
}
