import DroverHands
import Foundation

/// Removes a test's temporary directory after unmounting the sandbox volumes in it (its hands
/// root is the directory itself or its `hands/`): a mounted volume would survive `removeItem`.
/// Run from a `defer` through a Task, so it also runs when the test fails part way.
func removeHandsRoot(_ root: URL) async {
    for hands in [root, root.appendingPathComponent("hands")] { await HandsLayout(root: hands).unmountAll() }
    try? FileManager.default.removeItem(at: root)
}
