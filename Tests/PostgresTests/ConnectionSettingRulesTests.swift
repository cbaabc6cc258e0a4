import Testing

@testable import Postgres

/// Values libpq checks only when it connects are checked when the configuration is made, so a
/// typo is bad input at once instead of retries that look like an outage; shapes that libpq
/// would pass on to the server (and the server would quote back, password and all) are refused
/// without being shown.
@Suite("Connection settings")
struct ConnectionSettingRulesTests {
    @Test(arguments: [
        "sslmode=bogus", "port=abc", "port=70000", "connect_timeout=abc", "target_session_attrs=maybe",
        "gssencmode=always", "channel_binding=yes", "keepalives_idle=soon", "ssl_min_protocol_version=TLSv9",
        "hostaddr=abc", "host=a,b port=1,2,3",
    ])
    func aValueLibpqWouldRefuseLaterIsRefusedNow(_ settings: String) {
        let error = #expect(throws: PostgresError.self) { try ConnectionConfiguration(settings, environment: [:]) }
        #expect(error?.code == .invalidConfiguration)
    }

    @Test(arguments: [
        "sslmode=verify-full", "port=5432", "host=a,b port=5432,5433", "host=a,b port=5432", "connect_timeout=5",
        "ssl_min_protocol_version=tlsv1.2", "ssl_max_protocol_version=", "hostaddr=127.0.0.1,::1 host=a,b",
        "target_session_attrs=read-write", "postgresql://app:p%40ss@db.example.com:5432/app?sslmode=require",
        "dbname=app", "app",
    ])
    func validSettingsAreKept(_ settings: String) throws {
        _ = try ConnectionConfiguration(settings, environment: [:])
    }

    @Test(arguments: [
        ("host=127.0.0.1 dbname=postgress://app:S3cr3tPW@127.0.0.1/db", "dbname"),
        ("postgresql://app:p@ssS3cr3tPW@db.example.com/app", "host"),
        ("postgress://app:S3cr3tPW@127.0.0.1/db", "URI"),
    ])
    func aPasswordInTheWrongPlaceIsNeverShown(_ settings: String, _ mentions: String) {
        let error = #expect(throws: PostgresError.self) { try ConnectionConfiguration(settings, environment: [:]) }
        #expect(error?.code == .invalidConfiguration)
        #expect(error?.message.contains(mentions) == true, "\(error?.message ?? "")")
        #expect(!"\(error.map { "\($0)" } ?? "")".contains("S3cr3tPW"))
    }

    @Test func theVariablesLibpqFallsBackToAreCheckedToo() {
        for environment in [["PGSSLMODE": "bogus"], ["PGPORT": "x"], ["PGDATABASE": "postgres://u:S3cr3tPW@h/db"], ["PGHOST": "u@h"]] {
            let error = #expect(throws: PostgresError.self) { try ConnectionConfiguration("", environment: environment) }
            #expect(error?.message.hasPrefix("PG") == true)
            #expect(!(error?.message.contains("S3cr3tPW") ?? true))
        }
        // A setting in the string wins over the variable, as in libpq.
        #expect(throws: Never.self) { try ConnectionConfiguration("sslmode=require", environment: ["PGSSLMODE": "bogus"]) }
    }

    @Test func aURIsPasswordAsWrittenIsScrubbedFromMessages() {
        #expect(ConnectionConfiguration.uriPasswords("postgresql://app:p%40ssword@h/db") == ["p%40ssword"])
        #expect(ConnectionConfiguration.uriPasswords("postgresql://app:pass@word@h/db") == ["pass@word", "pass"])
        #expect(ConnectionConfiguration.uriPasswords("host=h password=x").isEmpty)
    }
}
