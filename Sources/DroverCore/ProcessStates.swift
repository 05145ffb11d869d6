import Foundation

#if canImport(Glibc)
import Glibc
#endif

/// What the kernel says a process is doing, from /proc: enough to tell a process stuck in the
/// kernel (its wait channel names where) from one that is merely slow, after the fact.
public enum ProcessStates {
    /// `STATE NAME wchan=...` of a process or one of its threads; nil once it is gone.
    public static func describe(_ pid: pid_t, task: pid_t? = nil) -> String? {
        let base = task.map { "/proc/\(pid)/task/\($0)" } ?? "/proc/\(pid)"
        guard let stat = try? String(contentsOfFile: base + "/stat", encoding: .utf8),
            let open = stat.firstIndex(of: "("), let close = stat.lastIndex(of: ")"),
            stat.distance(from: close, to: stat.endIndex) > 2
        else { return nil }
        let state = stat[stat.index(close, offsetBy: 2)...].prefix(1)
        let wchan = (try? String(contentsOfFile: base + "/wchan", encoding: .utf8)) ?? "?"
        return "\(state) \(stat[stat.index(after: open)..<close]) wchan=\(wchan.isEmpty ? "-" : wchan)"
    }

    /// `pid` and every process below it, parents first.
    public static func tree(_ pid: pid_t) -> [pid_t] {
        var children: [pid_t: [pid_t]] = [:]
        for entry in (try? FileManager.default.contentsOfDirectory(atPath: "/proc")) ?? [] {
            guard let child = pid_t(entry), let parent = parentOf(child) else { continue }
            children[parent, default: []].append(child)
        }
        var order = [pid]
        var index = 0
        while index < order.count {
            order += (children[order[index]] ?? []).sorted()
            index += 1
        }
        return order
    }

    /// One line per process of `tree(pid)`: `PID STATE NAME wchan=...`.
    public static func describeTree(_ pid: pid_t) -> String {
        tree(pid).compactMap { member in describe(member).map { "\(member) \($0)" } }.joined(separator: "; ")
    }

    private static func parentOf(_ pid: pid_t) -> pid_t? {
        guard let stat = try? String(contentsOfFile: "/proc/\(pid)/stat", encoding: .utf8), let close = stat.lastIndex(of: ")") else {
            return nil
        }
        // After the name: state, then the parent's pid.
        let fields = stat[stat.index(after: close)...].split(separator: " ")
        return fields.count > 1 ? pid_t(fields[1]) : nil
    }
}
