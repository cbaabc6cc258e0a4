public import Foundation
import NIOCore
import NIOHTTP1
import NIOPosix
import Synchronization

/// A scriptable HTTP server on loopback for fault tests: each request takes the next scripted
/// `Reply` (or the default one), and every request is recorded for assertions.
public final class FakeHTTPServer: Sendable {
    /// What the server does with one request.
    public indirect enum Reply: Sendable {
        /// A complete response.
        case respond(status: Int, headers: [(String, String)] = [], body: String = "")
        /// Close the connection without answering (a reset as the client sees it).
        case closeConnection
        /// Never answer (the client's timeout must fire).
        case hang
        /// Wait, then do `then`.
        case delay(Duration, then: Reply)
        /// Send the status and headers, then the body in pieces with a pause before each.
        case slowBody(status: Int, headers: [(String, String)], chunks: [String], pause: Duration)

        /// A JSON error as Cognito sends it.
        public static func cognitoError(_ status: Int, type: String, message: String, requestID: String = "req-err") -> Reply {
            .respond(
                status: status,
                headers: [("Content-Type", "application/x-amz-json-1.1"), ("x-amzn-requestid", requestID), ("X-Amzn-ErrorType", type)],
                body: #"{"__type":"\#(type)","message":"\#(message)"}"#)
        }

        /// Cognito's empty success.
        public static func cognitoSuccess(requestID: String = "req-ok") -> Reply {
            .respond(status: 200, headers: [("Content-Type", "application/x-amz-json-1.1"), ("x-amzn-requestid", requestID)], body: "{}")
        }
    }

    /// A request as received.
    public struct RecordedRequest: Sendable {
        public let method: String
        public let uri: String
        public let headers: [(name: String, value: String)]
        public let body: String
        /// When the request was complete at the server.
        public let receivedAt: ContinuousClock.Instant
        /// Which TCP connection brought it (numbered as connections are accepted): tells apart
        /// the requests of two client processes whatever order they arrive in.
        public let connection: Int

        public func header(_ name: String) -> String? {
            headers.first { $0.name.lowercased() == name.lowercased() }?.value
        }

        /// The `Username` of a Cognito JSON body, if any.
        public var username: String? {
            (try? JSONSerialization.jsonObject(with: Data(body.utf8)) as? [String: Any])?["Username"] as? String
        }
    }

    /// Decides the reply for a request once the script is used up (request, 1-based request number).
    public typealias Responder = @Sendable (RecordedRequest, Int) -> Reply

    struct State {
        var script: [Reply] = []
        var fallback: Responder
        /// False for a long-running server (the bench's `--serve`): requests are counted, not kept.
        let keepsRequests: Bool
        var requests: [RecordedRequest] = []
        var received = 0
        var waiters: [(id: Int, count: Int, continuation: CheckedContinuation<Void, Never>)] = []
        var nextWaiter = 0
    }

    private let box: StateBox
    private let channel: any Channel
    /// `http://127.0.0.1:PORT`
    public let url: URL

    /// Starts a server on a free loopback port; `fallback` answers once the script is used up.
    /// `keepsRequests: false` only counts them (`requests` stays empty), so that a server
    /// answering millions of requests keeps a flat memory.
    public static func start(fallback: Reply = .cognitoSuccess(), keepsRequests: Bool = true) async throws -> FakeHTTPServer {
        try await start(keepsRequests: keepsRequests, responder: { _, _ in fallback })
    }

    /// Starts a server whose unscripted replies `responder` decides.
    public static func start(keepsRequests: Bool = true, responder: @escaping Responder) async throws -> FakeHTTPServer {
        let box = StateBox(fallback: responder, keepsRequests: keepsRequests)
        let channel = try await ServerBootstrap(group: MultiThreadedEventLoopGroup.singleton)
            .serverChannelOption(.socketOption(.so_reuseaddr), value: 1)
            .childChannelInitializer { channel in
                channel.pipeline.configureHTTPServerPipeline().flatMap {
                    channel.pipeline.addHandler(ScriptedHandler(box: box))
                }
            }
            .bind(host: "127.0.0.1", port: 0).get()
        return FakeHTTPServer(box: box, channel: channel)
    }

    private init(box: StateBox, channel: any Channel) {
        self.box = box
        self.channel = channel
        self.url = URL(string: "http://127.0.0.1:\(channel.localAddress!.port!)")!
    }

    /// Appends replies to the script, used in order by the next requests.
    public func enqueue(_ replies: Reply...) {
        enqueue(replies)
    }

    /// Appends replies to the script, used in order by the next requests.
    public func enqueue(_ replies: [Reply]) {
        box.state.withLock { $0.script += replies }
    }

    /// Every request received so far (none if the server was started not to keep them).
    public var requests: [RecordedRequest] { box.state.withLock { $0.requests } }

    /// How many requests arrived so far, kept or not.
    public var receivedCount: Int { box.state.withLock { $0.received } }

    /// Waits until at least `count` requests have arrived.
    public func waitForRequests(_ count: Int) async {
        let id = box.state.withLock { state in
            defer { state.nextWaiter += 1 }
            return state.nextWaiter
        }
        // Returns early if cancelled (a test's deadline), so that deadline can end the test.
        await withTaskCancellationHandler {
            await withCheckedContinuation { continuation in
                let ready = box.state.withLock { state -> Bool in
                    if state.received >= count || Task.isCancelled { return true }
                    state.waiters.append((id, count, continuation))
                    return false
                }
                if ready { continuation.resume() }
            }
        } onCancel: {
            box.state.withLock { state -> CheckedContinuation<Void, Never>? in
                guard let index = state.waiters.firstIndex(where: { $0.id == id }) else { return nil }
                return state.waiters.remove(at: index).continuation
            }?.resume()
        }
    }

    public func shutdown() async {
        try? await channel.close()
    }

    /// Lets the NIO handler reach the shared state.
    final class StateBox: Sendable {
        let state: Mutex<State>
        init(fallback: @escaping Responder, keepsRequests: Bool) {
            self.state = Mutex(State(fallback: fallback, keepsRequests: keepsRequests))
        }

        func record(_ request: RecordedRequest) -> Reply {
            let (reply, ready) = state.withLock { state -> (Reply, [CheckedContinuation<Void, Never>]) in
                state.received += 1
                if state.keepsRequests { state.requests.append(request) }
                let reply = state.script.isEmpty ? state.fallback(request, state.received) : state.script.removeFirst()
                let ready = state.waiters.filter { $0.count <= state.received }.map(\.continuation)
                state.waiters.removeAll { $0.count <= state.received }
                return (reply, ready)
            }
            for waiter in ready { waiter.resume() }
            return reply
        }
    }
}

/// Numbers the connections every fake server accepts.
private let nextConnection = Atomic<Int>(0)

/// Collects one request, then plays the scripted reply.
private final class ScriptedHandler: ChannelInboundHandler, @unchecked Sendable {
    // @unchecked: NIO confines a handler to its channel's event loop; its mutable fields are only
    // touched from `channelRead` and tasks scheduled on that same loop.
    typealias InboundIn = HTTPServerRequestPart
    typealias OutboundOut = HTTPServerResponsePart

    let box: FakeHTTPServer.StateBox
    private var head: HTTPRequestHead?
    private var body = ByteBuffer()

    private let connection = nextConnection.add(1, ordering: .relaxed).newValue

    init(box: FakeHTTPServer.StateBox) { self.box = box }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        switch unwrapInboundIn(data) {
        case .head(let head):
            self.head = head
            body.clear()
        case .body(var chunk):
            body.writeBuffer(&chunk)
        case .end:
            guard let head else { return }
            let request = FakeHTTPServer.RecordedRequest(
                method: head.method.rawValue, uri: head.uri, headers: head.headers.map { ($0.name, $0.value) },
                body: body.readString(length: body.readableBytes) ?? "", receivedAt: .now, connection: connection)
            play(box.record(request), context: context)
        }
    }

    private func play(_ reply: FakeHTTPServer.Reply, context: ChannelHandlerContext) {
        let loop = context.eventLoop
        switch reply {
        case .respond(let status, let headers, let body):
            var responseHeaders = HTTPHeaders(headers)
            responseHeaders.replaceOrAdd(name: "Content-Length", value: String(body.utf8.count))
            context.write(
                wrapOutboundOut(.head(HTTPResponseHead(version: .http1_1, status: .init(statusCode: status), headers: responseHeaders))), promise: nil)
            context.write(wrapOutboundOut(.body(.byteBuffer(ByteBuffer(string: body)))), promise: nil)
            context.writeAndFlush(wrapOutboundOut(.end(nil)), promise: nil)
        case .closeConnection:
            context.close(promise: nil)
        case .hang:
            break
        case .delay(let duration, let then):
            let contextBox = NIOLoopBound(context, eventLoop: loop)
            loop.scheduleTask(in: .nanoseconds(Int64(duration / .nanoseconds(1)))) {
                self.play(then, context: contextBox.value)
            }
        case .slowBody(let status, let headers, let chunks, let pause):
            var responseHeaders = HTTPHeaders(headers)
            responseHeaders.replaceOrAdd(name: "Content-Length", value: String(chunks.joined().utf8.count))
            context.writeAndFlush(
                wrapOutboundOut(.head(HTTPResponseHead(version: .http1_1, status: .init(statusCode: status), headers: responseHeaders))), promise: nil)
            let contextBox = NIOLoopBound(context, eventLoop: loop)
            let nanos = Int64(pause / .nanoseconds(1))
            for (index, chunk) in chunks.enumerated() {
                loop.scheduleTask(in: .nanoseconds(nanos * Int64(index + 1))) {
                    let context = contextBox.value
                    context.writeAndFlush(self.wrapOutboundOut(.body(.byteBuffer(ByteBuffer(string: chunk)))), promise: nil)
                    if index == chunks.count - 1 { context.writeAndFlush(self.wrapOutboundOut(.end(nil)), promise: nil) }
                }
            }
        }
    }
}
