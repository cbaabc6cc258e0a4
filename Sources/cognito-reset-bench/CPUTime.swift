import Foundation

// CPU accounting for the throughput figures: where the machine's time goes per job, so the
// printed bound rests on measured CPU rather than on wall-clock rates alone.

/// User and system CPU time this process has used, in seconds.
func processCPUSeconds() -> Double { usageSeconds(RUSAGE_SELF.rawValue) }

/// The same for this process's children that have exited and been waited for.
func childrenCPUSeconds() -> Double { usageSeconds(RUSAGE_CHILDREN.rawValue) }

private func usageSeconds(_ who: __rusage_who_t) -> Double {
    var usage = rusage()
    getrusage(who, &usage)
    func seconds(_ time: timeval) -> Double { Double(time.tv_sec) + Double(time.tv_usec) / 1e6 }
    return seconds(usage.ru_utime) + seconds(usage.ru_stime)
}

/// User and system CPU time of another running process (its threads included), in seconds.
func processCPUSeconds(pid: Int32) -> Double? {
    // /proc/PID/stat: the command name is in parentheses and may hold spaces; utime and stime
    // are the 12th and 13th fields after it, in clock ticks.
    guard let stat = try? String(contentsOfFile: "/proc/\(pid)/stat", encoding: .utf8),
        let close = stat.lastIndex(of: ")")
    else { return nil }
    let fields = stat[stat.index(after: close)...].split(separator: " ")
    guard fields.count > 12, let user = Double(fields[11]), let system = Double(fields[12]) else { return nil }
    return (user + system) / Double(sysconf(Int32(_SC_CLK_TCK)))
}

/// CPU time the whole machine has spent busy (every state but idle and I/O wait), in seconds
/// summed over all cores.
func machineBusySeconds() -> Double {
    guard let stat = try? String(contentsOfFile: "/proc/stat", encoding: .utf8),
        let line = stat.split(separator: "\n").first(where: { $0.hasPrefix("cpu ") })
    else { return 0 }
    let ticks = line.split(separator: " ").dropFirst().compactMap { Double($0) }
    guard ticks.count >= 5 else { return 0 }
    // user nice system idle iowait irq softirq steal (guest time is already counted in user).
    let busy = ticks.prefix(8).enumerated().filter { $0.offset != 3 && $0.offset != 4 }.map(\.element).reduce(0, +)
    return busy / Double(sysconf(Int32(_SC_CLK_TCK)))
}
