import Prometheus
import Synchronization

#if canImport(Glibc)
    import Glibc
#endif

/// The process metrics every Prometheus client exports (`process_cpu_seconds_total`,
/// `process_resident_memory_bytes`, `process_start_time_seconds`, `process_open_fds`, ...),
/// read from `/proc/self` at each scrape. swift-prometheus has no collector for them, and
/// dashboards and alerts written for any other exporter expect these names.
final class ProcessMetrics: Sendable {
    private let cpu: Prometheus.Counter
    private let cpuSeen = Mutex<Double>(0)
    private let resident: Gauge
    private let virtual: Gauge
    private let openFDs: Gauge
    private let maxFDs: Gauge

    init(registry: PrometheusCollectorRegistry) {
        cpu = registry.makeCounter(descriptor: Self.describe("process_cpu_seconds_total", "Total user and system CPU time spent in seconds."))
        resident = registry.makeGauge(descriptor: Self.describe("process_resident_memory_bytes", "Resident memory size in bytes."))
        virtual = registry.makeGauge(descriptor: Self.describe("process_virtual_memory_bytes", "Virtual memory size in bytes."))
        openFDs = registry.makeGauge(descriptor: Self.describe("process_open_fds", "Number of open file descriptors."))
        maxFDs = registry.makeGauge(descriptor: Self.describe("process_max_fds", "Maximum number of open file descriptors."))
        let start = registry.makeGauge(descriptor: Self.describe("process_start_time_seconds", "Start time of the process since unix epoch in seconds."))
        if let stat = Self.stat(), let boot = Self.bootTime() {
            start.set(boot + stat.startTicks / Self.ticksPerSecond)
        }
        refresh()
    }

    /// Reads `/proc/self` again; called before each scrape is answered.
    func refresh() {
        if let stat = Self.stat() {
            let seconds = stat.cpuTicks / Self.ticksPerSecond
            // A counter only goes up: add what was spent since the last scrape.
            let delta = cpuSeen.withLock { seen -> Double in
                defer { seen = max(seen, seconds) }
                return max(0, seconds - seen)
            }
            cpu.increment(by: delta)
            resident.set(stat.residentPages * Double(sysconf(Int32(_SC_PAGESIZE))))
            virtual.set(stat.virtualBytes)
        }
        if let fds = Self.openFileCount() { openFDs.set(Double(fds)) }
        var limit = rlimit()
        if getrlimit(Self.fileLimit, &limit) == 0 { maxFDs.set(Double(limit.rlim_cur)) }
    }

    private static let ticksPerSecond = Double(sysconf(Int32(_SC_CLK_TCK)))
    private static let fileLimit = __rlimit_resource_t(RLIMIT_NOFILE.rawValue)

    /// A name as written (the standard names need no namespace or unit assembled).
    private static func describe(_ name: String, _ help: String) -> MetricNameDescriptor {
        MetricNameDescriptor(metricName: name, unitName: "", helpText: help)
    }

    struct Stat {
        var cpuTicks: Double
        var startTicks: Double
        var virtualBytes: Double
        var residentPages: Double
    }

    /// `/proc/self/stat`, whose second field (the command, in parentheses) may hold spaces and
    /// parentheses itself: the fields that matter are counted from the last `)`.
    static func parseStat(_ text: String) -> Stat? {
        guard let close = text.lastIndex(of: ")") else { return nil }
        let fields = text[text.index(after: close)...].split(separator: " ", omittingEmptySubsequences: true)
        // fields[0] is field 3 (state): utime 14, stime 15, starttime 22, vsize 23, rss 24.
        guard fields.count > 21, let user = Double(fields[11]), let system = Double(fields[12]),
            let start = Double(fields[19]), let size = Double(fields[20]), let rss = Double(fields[21])
        else { return nil }
        return Stat(cpuTicks: user + system, startTicks: start, virtualBytes: size, residentPages: rss)
    }

    private static func stat() -> Stat? {
        readSmallFile("/proc/self/stat").flatMap(parseStat)
    }

    /// The `btime` line of `/proc/stat`: when the machine booted, in seconds since the epoch.
    private static func bootTime() -> Double? {
        guard let text = readSmallFile("/proc/stat") else { return nil }
        for line in text.split(separator: "\n") where line.hasPrefix("btime ") {
            return Double(line.dropFirst("btime ".count))
        }
        return nil
    }

    private static func openFileCount() -> Int? {
        guard let directory = opendir("/proc/self/fd") else { return nil }
        defer { closedir(directory) }
        var count = 0
        while let entry = readdir(directory) {
            let name = withUnsafeBytes(of: entry.pointee.d_name) { String(decoding: $0.prefix(while: { $0 != 0 }), as: UTF8.self) }
            if name != "." && name != ".." { count += 1 }
        }
        return count - 1  // the directory stream's own descriptor
    }

    /// A `/proc` file: its size reads as 0, so read until the end rather than by its size.
    private static func readSmallFile(_ path: String) -> String? {
        let fd = open(path, O_RDONLY | O_CLOEXEC)
        guard fd >= 0 else { return nil }
        defer { close(fd) }
        var bytes: [UInt8] = []
        var buffer = [UInt8](repeating: 0, count: 4096)
        while bytes.count < 1 << 20 {
            let count = read(fd, &buffer, buffer.count)
            guard count > 0 else { break }
            bytes += buffer[..<count]
        }
        return String(decoding: bytes, as: UTF8.self)
    }
}
