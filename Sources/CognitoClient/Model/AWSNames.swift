import Foundation

/// An AWS region name such as `eu-west-1`: it becomes a host name label and a signing scope,
/// so only a DNS label is accepted (lowercase letters, digits and `-`, starting with a letter,
/// at most 50 characters). New regions need no change here.
public struct RegionName: Sendable, Hashable, CustomStringConvertible {
    public static let rule = "must be a region name such as eu-west-1 (lowercase letters, digits and '-', at most 50)"
    public let rawValue: String

    public init(_ value: String, field: String = "region") throws(InvalidInput) {
        let bytes = value.utf8
        guard (1...50).contains(bytes.count), let first = bytes.first, (UInt8(ascii: "a")...UInt8(ascii: "z")).contains(first),
            bytes.last != UInt8(ascii: "-"),
            bytes.allSatisfy({
                (UInt8(ascii: "a")...UInt8(ascii: "z")).contains($0) || (UInt8(ascii: "0")...UInt8(ascii: "9")).contains($0) || $0 == UInt8(ascii: "-")
            })
        else { throw InvalidInput(field: field, rule: Self.rule) }
        rawValue = value
    }

    /// A comma-separated list (`COGNITO_RESET_REGIONS`): at least one name, each valid, no repeats.
    public static func list(_ text: String, field: String) throws(InvalidInput) -> [RegionName] {
        var names: [RegionName] = []
        for part in text.split(separator: ",", omittingEmptySubsequences: false) {
            let name = try RegionName(part.trimmingCharacters(in: .whitespaces), field: field)
            if !names.contains(name) { names.append(name) }
        }
        guard (1...100).contains(names.count) else {
            throw InvalidInput(field: field, rule: "must list 1 to 100 regions, e.g. eu-west-1,us-east-1")
        }
        return names
    }

    public var description: String { rawValue }
}

/// An IAM role's ARN, as STS `AssumeRole` takes it: `arn:PARTITION:iam::ACCOUNT:role/PATH/NAME`
/// with a 12-digit account, 20 to 2048 characters (the table's `pool_roles_role_arn_format`
/// says the same).
public struct RoleARN: Sendable, Hashable, CustomStringConvertible {
    public static let rule =
        "must be an IAM role ARN such as arn:aws:iam::111111111111:role/cognito-reset "
        + "(20-2048 characters; the name of letters, digits and +=,.@_/-)"
    public let rawValue: String
    /// The 12-digit account the role belongs to.
    public let accountID: String

    public init(_ value: String, field: String = "ROLE_ARN") throws(InvalidInput) {
        let parts = value.split(separator: ":", maxSplits: 5, omittingEmptySubsequences: false)
        let partition = parts.count == 6 ? parts[1] : ""
        guard (20...2048).contains(value.utf8.count), parts.count == 6, parts[0] == "arn",
            partition == "aws" || partition.hasPrefix("aws-"),
            partition.dropFirst(3).allSatisfy({ $0 == "-" || ("a"..."z").contains($0) }),
            parts[2] == "iam", parts[3].isEmpty,
            parts[4].utf8.count == 12, parts[4].utf8.allSatisfy({ (UInt8(ascii: "0")...UInt8(ascii: "9")).contains($0) }),
            parts[5].hasPrefix("role/"), parts[5].utf8.count > 5,
            parts[5].utf8.allSatisfy(Self.isNameByte)
        else { throw InvalidInput(field: field, rule: Self.rule) }
        rawValue = value
        accountID = String(parts[4])
    }

    static func isNameByte(_ byte: UInt8) -> Bool {
        (UInt8(ascii: "a")...UInt8(ascii: "z")).contains(byte) || (UInt8(ascii: "A")...UInt8(ascii: "Z")).contains(byte)
            || (UInt8(ascii: "0")...UInt8(ascii: "9")).contains(byte) || "+=,.@_/-".utf8.contains(byte)
    }

    public var description: String { rawValue }
}

/// The external id a role's trust policy may require: 2 to 1224 characters of letters, digits
/// and `+=,.@:/_-` (STS's rule; `pool_roles_external_id_format` says the same). AWS does not
/// treat it as a secret, and neither do we: `pool list` shows it.
public struct ExternalID: Sendable, Hashable, CustomStringConvertible {
    public static let rule = "must be 2-1224 characters of letters, digits and +=,.@:/_-"
    public let rawValue: String

    public init(_ value: String, field: String = "--external-id") throws(InvalidInput) {
        guard (2...1224).contains(value.utf8.count), value.utf8.allSatisfy({ RoleARN.isNameByte($0) || $0 == UInt8(ascii: ":") }) else {
            throw InvalidInput(field: field, rule: Self.rule)
        }
        rawValue = value
    }

    public var description: String { rawValue }
}

/// The IAM role a pool's calls are made with (STS `AssumeRole`), in the pool's own account.
public struct PoolRole: Sendable, Hashable {
    public let arn: RoleARN
    public let externalID: ExternalID?

    public init(arn: RoleARN, externalID: ExternalID? = nil) {
        self.arn = arn
        self.externalID = externalID
    }
}
