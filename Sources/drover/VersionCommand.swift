import ArgumentParser
import CCurl
import CHiredis
import Foundation

struct VersionCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "version",
        abstract: "Print Drover's version and those of the C libraries it links."
    )

    func run() async throws {
        print("drover \(DroverVersion.string)")
        print("hiredis \(HIREDIS_MAJOR).\(HIREDIS_MINOR).\(HIREDIS_PATCH)")
        print(String(cString: curl_version()))
    }
}
