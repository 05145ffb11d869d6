import DroverCore
import Foundation

/// Where this test process keeps its files: one directory, removed when the process exits. Each
/// test used to make its own directory in /tmp and few removed theirs, so a run of the suite
/// left some two hundred behind.
private let processScratch: URL = {
    let root = URL(fileURLWithPath: NSTemporaryDirectory()).appendingPathComponent("drover-tests-\(getpid())")
    try? FileManager.default.createDirectory(at: root, withIntermediateDirectories: true)
    atexit { try? FileManager.default.removeItem(at: processScratch) }
    return root
}()

/// A fresh path, not yet created, for one test's files: `label` and a unique suffix, under this
/// process's scratch directory.
public func scratchDirectory(_ label: String) -> URL {
    processScratch.appendingPathComponent("\(label)-\(Identifier.make(prefix: "t").suffix(10))")
}
