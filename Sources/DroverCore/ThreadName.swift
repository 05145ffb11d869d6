import CSpawn
import Foundation

/// Names the calling OS thread, as `top -H`, `perf` and `/proc/PID/task/*/comm` show it.
/// Foundation's `Thread.name` does not reach the kernel on Linux: without this, every thread
/// Drover starts is listed under the name of the dispatch thread that started it.
private func nameCurrentThread(_ name: String) {
    _ = drover_name_current_thread(name)
}

/// Starts an OS thread of Drover's own that runs `body`, named for Foundation and the kernel alike.
public func startNamedThread(_ name: String, stackSize: Int, _ body: @escaping @Sendable () -> Void) {
    let thread = Thread {
        nameCurrentThread(name)
        body()
    }
    thread.name = name
    thread.stackSize = stackSize
    thread.start()
}
