import Foundation

/// The built `drover` executable, found beside (or above) the running test bundle.
public let droverBinary: URL = {
    let bundle = URL(fileURLWithPath: CommandLine.arguments[0]).deletingLastPathComponent()
    var candidate = bundle
    while candidate.path != "/" {
        let drover = candidate.appendingPathComponent("drover")
        if FileManager.default.isExecutableFile(atPath: drover.path) { return drover }
        candidate = candidate.deletingLastPathComponent()
    }
    return bundle.appendingPathComponent("drover")
}()
