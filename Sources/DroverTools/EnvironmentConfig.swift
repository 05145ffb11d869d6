import DroverCore
import Foundation

/// What the hands take from an environment's `config` (the SDK's `BetaCloudConfig` or
/// `BetaSelfHostedConfig`): the pip packages its sandboxes get, and its network policy.
public struct EnvironmentConfig: Sendable, Equatable, Hashable {
    /// pip requirement specifiers, sorted, as given (`pandas==2.2.0`).
    public var pip: [String] = []
    /// Where its sandboxes may connect, through the worker's egress proxy.
    public var network: NetworkPolicy = .offline
    /// For a `self_hosted` environment, its id: the sandbox tools of its sessions run on the
    /// workers that poll it, not in Drover's sandboxes.
    public var selfHostedEnvironment: String?

    /// The toolset tools a self-hosted environment's worker runs (the SDK's
    /// `beta_agent_toolset_20260401`); `web_fetch` and `web_search` stay with Drover.
    public static let selfHostedTools: Set<String> = ["bash", "read", "write", "edit", "glob", "grep"]

    /// Whether a worker of the session's self-hosted environment runs the toolset tool `name`.
    public func runsRemotely(_ name: String) -> Bool {
        selfHostedEnvironment != nil && Self.selfHostedTools.contains(name)
    }

    public init(pip: [String] = [], network: NetworkPolicy = .offline) {
        self.pip = pip.sorted()
        self.network = network
    }

    /// No packages, no network: what a session without an environment gets.
    public static let none = EnvironmentConfig()

    /// Identifies the configuration: sandboxes are pooled per key.
    public var key: String {
        network.isOffline ? packagesKey : Self.hash(packagesCanonical + "\nnet:" + network.canonical)
    }

    /// Identifies the packages alone: a package layer is cached per key, whatever the network.
    public var packagesKey: String { Self.hash(packagesCanonical) }

    private var packagesCanonical: String { "pip:" + pip.joined(separator: "\n") }

    private static func hash(_ canonical: String) -> String {
        var hash: UInt64 = 0xcbf2_9ce4_8422_2325
        for byte in canonical.utf8 {
            hash = (hash ^ UInt64(byte)) &* 0x100_0000_01b3
        }
        return String(hash, radix: 16).leftPadded(to: 16)
    }

    /// A setting that Drover does not honour yet. The API answers it with 501.
    public struct NotBuiltYet: Error, CustomStringConvertible {
        public let field: String
        public let detail: String
        public var description: String { "environment \(field): \(detail)" }
    }

    /// Parses the environment's `config` object. Package managers other than pip are refused with
    /// `NotBuiltYet`, naming the field; a malformed field with `Invalid`, naming it too.
    public static func parse(_ config: JSONValue?) throws -> EnvironmentConfig {
        guard let config, config != .null else { return .none }
        guard let fields = config.objectValue else {
            throw Invalid(
                message:
                    "environment config must be an object such as {\"type\":\"cloud\",\"networking\":{\"type\":\"limited\",\"allowed_hosts\":[]},\"packages\":{\"pip\":[]}}"
            )
        }
        switch fields["type"]?.stringValue {
        case "self_hosted":
            guard let id = fields["environment_id"]?.stringValue, !id.isEmpty else {
                throw Invalid(field: "config.environment_id", message: "a self_hosted session's config must name its environment")
            }
            var config = EnvironmentConfig.none
            config.selfHostedEnvironment = id
            return config
        case "cloud", nil:
            break
        case let other:
            throw Invalid(message: "config.type must be \"cloud\" or \"self_hosted\", not \(other.map { "\"\($0)\"" } ?? "a non-string")")
        }
        let network = try NetworkPolicy.parse(fields["networking"])
        var pip: [String] = []
        if let packages = fields["packages"], packages != .null {
            guard let managers = packages.objectValue else {
                throw Invalid(message: "config.packages must be an object with lists such as {\"pip\": [\"requests==2.32.3\"]}")
            }
            for (manager, value) in managers where manager != "type" {
                guard case .array(let items) = value else {
                    throw Invalid(message: "config.packages.\(manager) must be a list of strings")
                }
                let names = try items.map { item -> String in
                    guard let name = item.stringValue, !name.trimmingCharacters(in: .whitespaces).isEmpty, !name.hasPrefix("-") else {
                        throw Invalid(
                            message: "config.packages.\(manager) must hold package specifiers such as \"requests==2.32.3\" (not options, not empty)")
                    }
                    return name
                }
                if manager == "pip" {
                    for (index, name) in names.enumerated() {
                        if let problem = PipRequirement.problem(with: name) {
                            throw Invalid(
                                field: "config.packages.pip[\(index)]",
                                message:
                                    "'\(name.prefix(80))' \(problem). Fix: give a package name with optional version specifiers, such as \"requests==2.32.3\"; local paths, URLs, VCS specifiers and options are refused"
                            )
                        }
                    }
                    pip = names
                } else if !names.isEmpty {
                    guard ["apt", "cargo", "gem", "go", "npm"].contains(manager) else {
                        throw Invalid(
                            message: "config.packages.\(manager) is not a package manager; use pip (apt, cargo, gem, go and npm are not built yet)")
                    }
                    throw NotBuiltYet(
                        field: "config.packages.\(manager)",
                        detail:
                            "Drover installs pip packages only; \(manager) packages are not built yet. Fix: remove them, or install them in the host image"
                    )
                }
            }
        }
        return EnvironmentConfig(pip: pip, network: network)
    }

    public struct Invalid: Error, CustomStringConvertible {
        /// The field at fault, where one field is.
        public let field: String?
        public let message: String
        public init(field: String? = nil, message: String) {
            self.field = field
            self.message = message
        }
        public var description: String { "invalid environment: \(field.map { "\($0): " } ?? "")\(message)" }
    }
}

extension String {
    fileprivate func leftPadded(to length: Int) -> String {
        count >= length ? self : String(repeating: "0", count: length - count) + self
    }
}
