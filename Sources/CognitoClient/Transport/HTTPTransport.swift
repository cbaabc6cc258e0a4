import AsyncHTTPClient
public import Foundation
import NIOCore
import NIOHTTP1
import NIOPosix

/// A response read in full (bodies of the calls we make are small; larger ones are cut off).
public struct HTTPResponseData: Sendable {
    public let status: Int
    public let headers: [(name: String, value: String)]
    public let body: [UInt8]
}

/// Why no HTTP response arrived. All of these are transient for Cognito calls.
public struct TransportError: Error, Sendable, CustomStringConvertible {
    public enum Kind: String, Sendable {
        case timeout, connectionFailed, connectionClosed, tls, other
    }
    public let kind: Kind
    public let detail: String
    public var description: String { "\(kind.rawValue): \(detail)" }
}

/// HTTP for every AWS call of this module, over one shared async-http-client connection pool,
/// with connect and read timeouts and an overall deadline per request.
public final class HTTPTransport: Sendable {
    public struct Timeouts: Sendable {
        public var connect: Duration
        /// Longest wait for the next bytes of a response.
        public var read: Duration
        /// Longest a whole request may take.
        public var total: Duration

        public init(connect: Duration = .seconds(3), read: Duration = .seconds(10), total: Duration = .seconds(15)) {
            self.connect = connect
            self.read = read
            self.total = total
        }
    }

    /// The one event loop every AWS call of the process runs on. With NIO's default group (a
    /// loop per core) a request's task and the pooled connection it was given often sat on two
    /// loops, and each step of the exchange crossed threads; on one loop they never do. The
    /// calls are small and few (a few thousand a second at most, which one loop serves with
    /// most of a core to spare): with 20,000 calls at concurrency 16 against a local fake, a
    /// quarter fewer context switches and about 15 % more calls a second. Never shut down, as
    /// NIO's own singleton group is not: it lives as long as the process.
    static let callLoop = MultiThreadedEventLoopGroup(numberOfThreads: 1)

    /// Bodies larger than this are not read (Cognito's replies are tiny).
    static let maximumBodySize = 1 << 20

    let client: HTTPClient
    public let timeouts: Timeouts

    /// - Parameter connectionsPerHost: keep-alive connections per endpoint; set it to the worker's
    ///   concurrency so calls never queue behind each other for a connection.
    public init(timeouts: Timeouts = Timeouts(), connectionsPerHost: Int = 16) {
        var configuration = HTTPClient.Configuration(
            timeout: .init(connect: .init(timeouts.connect), read: .init(timeouts.read)))
        configuration.connectionPool = .init(
            idleTimeout: .seconds(60), concurrentHTTP1ConnectionsPerHostSoftLimit: max(1, connectionsPerHost))
        configuration.decompression = .disabled
        // No AWS SDK follows redirects for these JSON protocols: a 3xx is an answer (an error), and
        // following a 307 would send the signed request, pool id and username to another host.
        configuration.redirectConfiguration = .disallow
        self.client = HTTPClient(eventLoopGroupProvider: .shared(Self.callLoop), configuration: configuration)
        self.timeouts = timeouts
    }

    /// Closes pooled connections. Call once, before the process exits.
    public func shutdown() async {
        try? await client.shutdown()
    }

    /// Sends a request and reads the whole response, or throws a `TransportError`.
    public func send(
        method: String, url: URL, headers: [(name: String, value: String)], body: [UInt8] = [],
        timeout: Duration? = nil
    ) async throws(TransportError) -> HTTPResponseData {
        var request = HTTPClientRequest(url: url.absoluteString)
        request.method = HTTPMethod(rawValue: method)
        for (name, value) in headers { request.headers.add(name: name, value: value) }
        if !body.isEmpty || method == "POST" || method == "PUT" { request.body = .bytes(ByteBuffer(bytes: body)) }
        let total = timeout ?? timeouts.total
        let client = self.client
        let finalRequest = request
        do {
            // The deadline covers the whole exchange, body included: async-http-client's own
            // timeout ends with the response head, and its read timeout restarts with every byte,
            // so a server trickling a long body one byte at a time would hold the call forever.
            // On time, the exchange is cancelled (closing its connection) and not waited for.
            return try await race(total) {
                let response = try await client.execute(finalRequest, timeout: .init(total))
                let bytes = try await response.body.collect(upTo: Self.maximumBodySize)
                return HTTPResponseData(
                    status: Int(response.status.code),
                    headers: response.headers.map { ($0.name, $0.value) },
                    body: Array(buffer: bytes))
            }
        } catch is TimeoutError {
            throw TransportError(kind: .timeout, detail: "no complete response within \(total)")
        } catch {
            throw Self.classify(error)
        }
    }

    /// Runs `body` in a task of its own against a timer on the call loop; the first to finish
    /// answers. On time the task is cancelled and not waited for (a connection stuck in a write
    /// must not hold the call). `withTimeout` does the same with a second task sleeping and a third
    /// waiting; here the timer is an entry in the event loop's timer heap and the task delivers its
    /// own result, which saves two task starts and a wake-up per call.
    func race<T: Sendable>(_ limit: Duration, _ body: @escaping @Sendable () async throws -> T) async throws -> T {
        let once = ResumeOnce<T>()
        let work = Task {
            do {
                once.resume(with: .success(try await body()))
            } catch {
                once.resume(throwing: error)
            }
        }
        // The first resume wins: a result delivered before the timer fires is the answer, and a
        // success is never turned into a timeout (that would repeat a call that was made).
        let timer = client.eventLoopGroup.any().scheduleTask(in: TimeAmount(limit)) {
            work.cancel()
            once.resume(throwing: TimeoutError())
        }
        defer { timer.cancel() }
        return try await withTaskCancellationHandler {
            try await withCheckedThrowingContinuation { once.set($0) }
        } onCancel: {
            work.cancel()
            once.resume(throwing: CancellationError())
        }
    }

    static func classify(_ error: any Error) -> TransportError {
        if let error = error as? HTTPClientError {
            switch error {
            case .connectTimeout, .readTimeout, .deadlineExceeded, .writeTimeout:
                return TransportError(kind: .timeout, detail: "\(error)")
            case .remoteConnectionClosed, .cancelled:
                return TransportError(kind: .connectionClosed, detail: "\(error)")
            default:
                return TransportError(kind: .other, detail: "\(error)")
            }
        }
        let text = "\(error)"
        if text.localizedCaseInsensitiveContains("connect") || text.localizedCaseInsensitiveContains("refused") {
            return TransportError(kind: .connectionFailed, detail: text)
        }
        if text.localizedCaseInsensitiveContains("ssl") || text.localizedCaseInsensitiveContains("tls")
            || text.localizedCaseInsensitiveContains("certificate")
        {
            return TransportError(kind: .tls, detail: text)
        }
        if text.localizedCaseInsensitiveContains("reset") || text.localizedCaseInsensitiveContains("eof") {
            return TransportError(kind: .connectionClosed, detail: text)
        }
        return TransportError(kind: .other, detail: text)
    }
}

extension TimeAmount {
    init(_ duration: Duration) {
        self = .nanoseconds(Int64(duration / .nanoseconds(1)))
    }
}
