import DroverCore
import DroverModelStub
import Foundation

/// A batch job, as written in `Jobs/NAME.yaml` (documented in `Jobs/README.md`).
public struct JobSpec: Sendable {
    /// Where the agent comes from.
    public enum AgentSource: Sendable, Equatable {
        /// The SDK's agent create shape (`model`, `system`, `tools`, ...), written in the file.
        case inline(JSONValue)
        /// The newest version of a stored agent with this name (created through the API).
        case named(String)
    }

    public enum EnvironmentSource: Sendable, Equatable {
        case inline(JSONValue)
        case named(String)
    }

    public enum ItemSource: Sendable, Equatable {
        /// Files or directories matching a glob, relative to the job file.
        case glob(String)
        /// The rows of a CSV file with a header line.
        case csv(String)
        /// Items written in the file: mappings of fields, or single values (field `value`).
        case list([JSONValue])
    }

    /// A copy from the host into the workspace (`files`) or from the workspace into the report
    /// folder (`collect`). Both sides take `{{field}}` placeholders.
    public struct Copy: Sendable, Equatable {
        public var from: String
        public var to: String?
    }

    public struct Output: Sendable, Equatable {
        public enum Source: String, Sendable { case finalMessage = "final_message", file }
        public var source: Source = .finalMessage
        /// For `file`: the workspace path of a JSON file the agent wrote.
        public var file: String?
        /// Keys of the JSON object that become report columns; empty means every key.
        public var columns: [String] = []
    }

    public struct Budget: Sendable, Equatable {
        /// Input plus output tokens across the batch; no new item starts once it is spent.
        public var maxTokens: Int?
        /// Seconds of session running time across the batch.
        public var maxActiveSeconds: Double?
    }

    public var name: String
    public var description: String?
    /// The job file, absolute.
    public var file: URL
    public var agent: AgentSource
    public var environment: EnvironmentSource?
    public var items: ItemSource
    public var prompt: String
    public var files: [Copy]
    public var collect: [Copy]
    public var concurrency: Int
    public var retries: Int
    public var timeoutSeconds: Double
    public var budget: Budget
    public var output: Output
    public var reportDirectory: URL
    /// The scripted model's playbook (used when no model key is set).
    public var playbook: Playbook?
    /// A coordinator's roster agents' playbooks, each for the agent with that system prompt.
    public var threadPlaybooks: [ThreadPlaybook] = []

    public struct ThreadPlaybook: Sendable, Equatable {
        public var system: String
        public var playbook: Playbook
    }
    /// The line (from 1) of the first use of each placeholder in the prompt, the files and the
    /// playbook, for errors that only the items can tell.
    public var placeholderLines = PlaceholderLines()

    /// The job's directory: relative paths in the file start here.
    public var directory: URL { file.deletingLastPathComponent() }
}

/// Where a job file's placeholders are, by section.
public struct PlaceholderLines: Sendable, Equatable {
    var text = ""

    /// The line of the first `{{name}}` in the section under the top-level `key`.
    public func line(of name: String, under key: String) -> Int? {
        Template.line(of: name, in: text, from: Template.line(ofKey: key, in: text) ?? 1)
    }
}
