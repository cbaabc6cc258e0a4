import Foundation
import Postgres
import PostgresTesting
import Testing

@Suite("LISTEN / NOTIFY")
struct ListenTests {
    @Test func deliversANotifySentFromAnotherConnection() async throws {
        try await TemporaryDatabase.with { database in
            let events = NotificationListener.events(configuration: database.configuration, channels: ["work", "other"])
            var iterator = events.makeAsyncIterator()
            guard case .listening(reconnected: false) = try #require(await iterator.next()) else {
                Issue.record("expected .listening first")
                return
            }
            let sender = try await database.connect()
            try await sender.execute("SELECT pg_notify('work', \("payload ü"))")
            try await sender.execute("NOTIFY other")
            guard case .notification(let first) = try #require(await iterator.next()),
                case .notification(let second) = try #require(await iterator.next())
            else {
                Issue.record("expected two notifications")
                return
            }
            #expect(first.channel == "work")
            #expect(first.payload == "payload ü")
            #expect(first.senderPID == (await sender.backendPID))
            #expect(second.channel == "other")
            #expect(second.payload == "")
            await sender.close()
        }
    }

    @Test func reconnectsAndListensAgainAfterItsConnectionIsKilled() async throws {
        try await TemporaryDatabase.with { database in
            let name = "listener-\(UUID().uuidString.prefix(8))"
            let events = NotificationListener.events(
                configuration: database.configuration.setting("application_name", to: name), channels: ["work"],
                backoff: ReconnectBackoff(initial: .milliseconds(10), maximum: .milliseconds(50)))
            var iterator = events.makeAsyncIterator()
            guard case .listening = try #require(await iterator.next()) else { return }
            let admin = try await database.connect()
            let killed = try await admin.query(
                "SELECT count(*) FILTER (WHERE pg_terminate_backend(pid)) FROM pg_stat_activity WHERE application_name = \(name)"
            )[0].decode(Int.self, at: 0)
            #expect(killed == 1)
            var sawDisconnect = false
            while let event = await iterator.next() {
                if case .disconnected = event { sawDisconnect = true }
                if case .listening(let reconnected) = event {
                    #expect(reconnected)
                    break
                }
            }
            #expect(sawDisconnect)
            try await admin.execute("NOTIFY work, 'after'")
            guard case .notification(let notification) = try #require(await iterator.next()) else {
                Issue.record("expected the notification sent after reconnecting")
                return
            }
            #expect(notification.payload == "after")
            await admin.close()
        }
    }

    @Test func endingTheIterationClosesTheListenerConnection() async throws {
        try await TemporaryDatabase.with { database in
            let name = "closing-\(UUID().uuidString.prefix(8))"
            let configuration = database.configuration.setting("application_name", to: name)
            let consumer = Task {
                for await event in NotificationListener.events(configuration: configuration, channels: ["work"]) {
                    if case .listening = event { return }
                }
            }
            await consumer.value  // the stream is dropped here
            let admin = try await database.connect()
            try await withDeadline(.seconds(20), "the listener connection to close") {
                while try await admin.query(
                    "SELECT count(*) FROM pg_stat_activity WHERE application_name = \(name)"
                )[0].decode(Int.self, at: 0) > 0 {
                    await Task.yield()
                }
            }
            await admin.close()
        }
    }
}
