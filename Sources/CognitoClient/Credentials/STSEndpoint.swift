public import Foundation

/// Where STS calls go: `AWS_ENDPOINT_URL_STS`, then `AWS_ENDPOINT_URL` (plain http allowed, for
/// emulators), else the regional endpoint `https://sts[-fips].{region}.amazonaws.com[.cn]`, or
/// the global one when no region is known.
public struct STSEndpoint: Sendable {
    public let override: URL?
    public let useFIPS: Bool

    public init(environment: [String: String]) {
        override = ["AWS_ENDPOINT_URL_STS", "AWS_ENDPOINT_URL"].lazy
            .compactMap { environment[$0].flatMap(URL.init(string:)) }
            .first { $0.host != nil && ["http", "https"].contains($0.scheme?.lowercased() ?? "") }
        useFIPS = environment["AWS_USE_FIPS_ENDPOINT"]?.lowercased() == "true"
    }

    public func url(region: String?) -> URL {
        if let override { return override }
        guard let region else { return URL(string: "https://sts.amazonaws.com/")! }
        let service = useFIPS ? "sts-fips" : "sts"
        return URL(string: "https://\(service).\(region).\(region.hasPrefix("cn-") ? "amazonaws.com.cn" : "amazonaws.com")/")!
    }
}
