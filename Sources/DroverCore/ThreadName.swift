import CSpawn

/// Names the calling OS thread, as `top -H`, `perf` and `/proc/PID/task/*/comm` show it.
/// Foundation's `Thread.name` does not reach the kernel on Linux: without this, every thread
/// Drover starts is listed under the name of the dispatch thread that started it.
public func nameCurrentThread(_ name: String) {
    _ = drover_name_current_thread(name)
}
