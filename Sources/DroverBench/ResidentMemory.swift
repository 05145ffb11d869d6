import Foundation

/// This process's resident memory, from /proc: the current size and the high-water mark since
/// the last `resetPeak()`, so that one phase of a benchmark can be measured on its own.
enum ResidentMemory {
    /// Resets the kernel's peak-RSS mark (VmHWM) to the current RSS (`clear_refs` value 5,
    /// Linux 4.0 and later). False where the kernel refuses: the peak is then the process's.
    @discardableResult
    static func resetPeak() -> Bool {
        guard let handle = FileHandle(forWritingAtPath: "/proc/self/clear_refs") else { return false }
        defer { try? handle.close() }
        return (try? handle.write(contentsOf: Data("5".utf8))) != nil
    }

    /// Current resident set size, MiB.
    static var currentMB: Double { field("VmRSS") }

    /// Peak resident set size since the last reset, MiB.
    static var peakMB: Double { field("VmHWM") }

    private static func field(_ name: String) -> Double {
        guard let status = try? String(contentsOfFile: "/proc/self/status", encoding: .utf8) else { return .nan }
        for line in status.split(separator: "\n") where line.hasPrefix(name + ":") {
            let kilobytes = line.dropFirst(name.count + 1).split(whereSeparator: { $0 == " " || $0 == "\t" }).first.flatMap { Double($0) }
            return (kilobytes ?? .nan) / 1024
        }
        return .nan
    }
}
