public import Foundation

/// Where Cognito calls go and in which region they are signed.
///
/// Region: `AWS_REGION`, then `AWS_DEFAULT_REGION`, then the profile's `region`; without any, the
/// pool id's prefix. Endpoint: `AWS_ENDPOINT_URL_COGNITO_IDENTITY_PROVIDER`, then
/// `AWS_ENDPOINT_URL` (plain http allowed, for emulators), else
/// `https://cognito-idp[-fips].{region}.amazonaws.com[.cn]`.
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

    /// The region to sign calls for `pool` with: the pool's own. A configured region that
    /// differs is refused, since the call would go to the wrong place.
    public func region(for pool: UserPoolID) throws(InvalidInput) -> String {
        if let configuredRegion, configuredRegion != pool.region {
            throw InvalidInput(
                field: "UserPoolId",
                rule: "pool \(pool) is in region \(pool.region) but the configured region (AWS_REGION) is \(configuredRegion)")
        }
        return pool.region
    }

    /// The endpoint for `region`.
    public func url(region: String) -> URL {
        if let endpointOverride { return endpointOverride }
        let service = useFIPS ? "cognito-idp-fips" : "cognito-idp"
        let suffix = region.hasPrefix("cn-") ? "amazonaws.com.cn" : "amazonaws.com"
        return URL(string: "https://\(service).\(region).\(suffix)/")!
    }
}
