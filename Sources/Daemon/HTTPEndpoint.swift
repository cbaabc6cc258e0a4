import NIOCore
import NIOHTTP1
import NIOPosix

/// A small HTTP/1.1 server for operators' tools: Prometheus scrapes, health and readiness probes.
/// GET and HEAD only; every answer comes from `respond`.
///
/// Binding happens in `bind`, so a bad or busy address fails at start-up (before systemd hears
/// READY=1), not later; `run()` serves until its task is cancelled.
public final class HTTPEndpoint: Sendable {
    public struct Response: Sendable {
        public var status: Int
        public var contentType: String
        public var body: String

        public init(status: Int, contentType: String = "text/plain; charset=utf-8", body: String) {
            self.status = status
            self.contentType = contentType
            self.body = body
        }
    }

    /// Answers a GET for `path` (query string removed).
    public typealias Respond = @Sendable (_ path: String) async -> Response

    private typealias Connection = NIOAsyncChannel<HTTPServerRequestPart, HTTPServerResponsePart>
    private let server: NIOAsyncChannel<Connection, Never>
    private let respond: Respond
    /// The bound port (useful when asked for port 0).
    public let port: Int

    private init(server: NIOAsyncChannel<Connection, Never>, respond: @escaping Respond) {
        self.server = server
        self.respond = respond
        self.port = server.channel.localAddress?.port ?? 0
    }

    /// Listens on `host:port`; throws (with the system's reason) if the address cannot be bound.
    public static func bind(host: String, port: Int, respond: @escaping Respond) async throws -> HTTPEndpoint {
        let server = try await ServerBootstrap(group: MultiThreadedEventLoopGroup.singleton)
            .serverChannelOption(.socketOption(.so_reuseaddr), value: 1)
            .bind(host: host, port: port) { channel in
                channel.eventLoop.makeCompletedFuture {
                    try channel.pipeline.syncOperations.configureHTTPServerPipeline()
                    return try Connection(wrappingChannelSynchronously: channel)
                }
            }
        return HTTPEndpoint(server: server, respond: respond)
    }

    /// Serves requests until the calling task is cancelled, then closes the listener.
    public func run() async {
        await withDiscardingTaskGroup { group in
            try? await server.executeThenClose { inbound in
                try await withTaskCancellationHandler {
                    for try await connection in inbound {
                        group.addTask { [respond] in await Self.serve(connection, respond) }
                    }
                } onCancel: { [server] in
                    server.channel.close(promise: nil)
                }
            }
            group.cancelAll()
        }
    }

    /// Closes the listener (a running `run()` returns).
    public func close() async {
        try? await server.channel.close()
    }

    private static func serve(_ connection: Connection, _ respond: Respond) async {
        try? await connection.executeThenClose { inbound, outbound in
            var head: HTTPRequestHead?
            for try await part in inbound {
                switch part {
                case .head(let requestHead):
                    head = requestHead
                case .body:
                    break
                case .end:
                    guard let request = head else { return }
                    let response: Response
                    if request.method == .GET || request.method == .HEAD {
                        let path = String(request.uri.split(separator: "?", maxSplits: 1, omittingEmptySubsequences: false)[0])
                        response = await respond(path)
                    } else {
                        response = Response(status: 405, body: "method not allowed\n")
                    }
                    let body = ByteBuffer(string: response.body)
                    var headers = HTTPHeaders()
                    headers.add(name: "Content-Type", value: response.contentType)
                    headers.add(name: "Content-Length", value: "\(body.readableBytes)")
                    headers.add(name: "Cache-Control", value: "no-store")
                    if !request.isKeepAlive { headers.add(name: "Connection", value: "close") }
                    try await outbound.write(
                        .head(
                            HTTPResponseHead(
                                version: request.version, status: HTTPResponseStatus(statusCode: response.status), headers: headers)))
                    if request.method != .HEAD { try await outbound.write(.body(.byteBuffer(body))) }
                    try await outbound.write(.end(nil))
                    if !request.isKeepAlive { return }
                    head = nil
                }
            }
        }
    }
}
