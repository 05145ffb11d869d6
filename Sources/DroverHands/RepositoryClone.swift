import DroverCore
import DroverEgress
import Foundation

/// A session's git repository, as the hands get it: where it comes from, where it goes under
/// /workspace, and its token (which only the egress proxy ever holds).
public struct SandboxRepository: Sendable, CustomStringConvertible {
    public let id: String
    public let url: String
    public let branch: String?
    public let commit: String?
    /// Relative to /workspace.
    public let path: String
    public let token: String?

    public init(id: String, url: String, branch: String?, commit: String?, path: String, token: String?) {
        self.id = id
        self.url = url
        self.branch = branch
        self.commit = commit
        self.path = path
        self.token = token
    }

    public var description: String { "SandboxRepository(\(id): \(url) at /workspace/\(path), token withheld)" }

    public var egress: EgressRepository? { EgressRepository(resourceID: id, url: url, token: token) }

    /// The clone, as a script for a sandbox's shell. Every value is quoted for the shell (and
    /// was checked by the API); a path that already holds a clone is left as it is, and one that
    /// holds anything else is an error rather than something to write over.
    var cloneScript: String {
        let destination = Self.quote("/workspace/" + path)
        var lines = [
            "set -e",
            "if [ -e \(destination)/.git ]; then echo 'drover: already cloned'; exit 0; fi",
            // The path goes to printf as an argument: a path is data, never shell code.
            "if [ -e \(destination) ] && [ -n \"$(ls -A \(destination) 2>/dev/null)\" ]; then printf 'drover: %s is not empty, so the repository is not cloned there\\n' \(destination) >&2; exit 3; fi",
            "git clone --quiet \(branch.map { "--branch \(Self.quote($0)) " } ?? "")-- \(Self.quote(url)) \(destination)",
        ]
        if let commit { lines.append("git -C \(destination) -c advice.detachedHead=false checkout --quiet --detach \(Self.quote(commit))") }
        return lines.joined(separator: "\n")
    }

    static func quote(_ text: String) -> String {
        "'" + text.replacingOccurrences(of: "'", with: "'\\''") + "'"
    }
}

extension SandboxPool {
    /// Clones `repository` into the session's workspace, in a sandbox of its own (as nobody, the
    /// workspace bound as the session's sandbox binds it, so a link the agent planted resolves
    /// inside the sandbox, never on the host). Its only way out is the egress proxy, which lets
    /// it reach the repository's git requests and nothing else, and adds the token: the clone's
    /// remote holds no token. Returns what git said when it failed.
    public func clone(_ repository: SandboxRepository, for session: SessionID) async throws {
        guard let target = repository.egress else { throw CloneFailed(repository: repository, output: "the URL is not a git repository's") }
        let egress = try await attachEgress(policy: .offline)
        egress.route.assign(session: session)
        egress.route.use(repositories: [target])
        let sandbox: Sandbox
        do {
            // The session's volume, mounted while the shell starts, as for the session's sandbox.
            sandbox = try Sandbox(
                workspace: workspace(session), limits: settings.limits, volume: layout.volume(session.rawValue), egress: egress,
                proxiesLoopback: true)
        } catch {
            await egress.listener.close()
            throw error
        }
        let run: SandboxRun
        do {
            run = try await sandbox.run("export GIT_TERMINAL_PROMPT=0 GIT_CONFIG_NOSYSTEM=1\n" + repository.cloneScript, wallClock: .seconds(900))
        } catch {
            await sandbox.close()
            throw error
        }
        await sandbox.close()
        guard run.exitCode == 0, !run.timedOut else { throw CloneFailed(repository: repository, output: run.output) }
    }

    public struct CloneFailed: Error, CustomStringConvertible {
        public let repository: SandboxRepository
        public let output: String
        public var description: String {
            "the repository \(repository.url) could not be cloned into /workspace/\(repository.path): \(String(output.suffix(2000)))"
        }
    }
}
