import DroverCore
import DroverTesting
import Foundation
import Testing

@testable import DroverHands

@Suite("Repository clone script")
struct RepositoryCloneTests {
    @Test("every value reaches git as one word, whatever it holds: quotes, $(...), backticks, newlines")
    func quoting() async throws {
        for hostile in ["plain", "it's", "$(touch /tmp/pwned)", "`id`", "a b\nc", "'; rm -rf / #", "--upload-pack=x"] {
            let echoed = try await runProgram("/bin/bash", ["-c", "printf %s \(SandboxRepository.quote(hostile))"])
            #expect(echoed.output == hostile, "\(hostile) came back as \(echoed.output)")
        }
        let repository = SandboxRepository(
            id: "sesrsc_1", url: "https://git.example.org/a/b.git", branch: "main", commit: nil, path: "w$(id)/b", token: "secret")
        #expect(repository.cloneScript.contains("'/workspace/w$(id)/b'"))
        #expect(!repository.cloneScript.contains("secret") && !repository.description.contains("secret"))
    }
}
