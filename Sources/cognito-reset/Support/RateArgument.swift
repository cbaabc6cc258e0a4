import CognitoClient
import Foundation
import ResetQueue

/// Rates as operators write them: `25`, `25/s`, `2.5/s` (requests per second).
enum RateArgument {
    /// Parses `text` for `field`; `allowZero` for ceilings, where 0 means paused.
    static func parse(_ text: String, field: String, allowZero: Bool = false) throws -> Double {
        let number = text.hasSuffix("/s") ? String(text.dropLast(2)) : text
        // At least one call per 1,000 s (the schema's bound: a rate a hair above 0 puts the next
        // call further off than PostgreSQL's intervals reach).
        let rule =
            allowZero
            ? "must be requests per second, 0 (paused) or from 0.001 to 10000, e.g. 25 or 25/s"
            : "must be requests per second from 0.001 to 10000, e.g. 25 or 25/s"
        guard let value = Double(number), value.isFinite, value <= 10_000, value >= 0.001 || (allowZero && value == 0) else {
            throw CLIError.badInput("\(field): \(rule)")
        }
        return value
    }

    /// The worker's key for its own account: `--rate-key` / `COGNITO_RESET_RATE_KEY`, where
    /// `{region}` stands for each pool's region, else `cognito:{region}` (one bucket per region).
    static func workerKey(_ explicit: String?, field: String = "--rate-key") throws -> String {
        guard let explicit else { return SharedRateLimit.defaultKeyTemplate }
        do {
            // As stored: with the longest region name in place of {region}.
            try SharedRateLimit.checkKey(explicit.replacingOccurrences(of: "{region}", with: String(repeating: "r", count: 50)), field: field)
        } catch {
            throw CLIError.badInput("\(field): \(error.rule)")
        }
        return explicit
    }

    /// The shared bucket's key: `--rate-key` / `COGNITO_RESET_RATE_KEY`, else one per region
    /// (`cognito:REGION`, from AWS_REGION or the profile), else `cognito:default`.
    static func key(_ explicit: String?, field: String = "--rate-key", environment: [String: String]) throws -> String {
        if let explicit {
            do {
                try SharedRateLimit.checkKey(explicit, field: field)
            } catch {
                throw CLIError.badInput("\(field): \(error.rule)")
            }
            return explicit
        }
        let profileRegion = SharedFilesCredentialProvider(environment: environment).region()
        let region = (try? CognitoEndpointResolver.fromEnvironment(environment, profileRegion: profileRegion))?.configuredRegion
        let key = SharedRateLimit.defaultKey(region: region ?? "default")
        do {
            try SharedRateLimit.checkKey(key, field: "AWS_REGION")
        } catch {
            throw CLIError.badInput("AWS_REGION: must be a region name such as eu-west-1")
        }
        return key
    }
}
