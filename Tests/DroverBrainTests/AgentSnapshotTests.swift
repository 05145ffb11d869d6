import DroverBrain
import DroverCore
import Foundation
import Testing

/// Sessions created over the API store the SDK's agent resource; the brain must read it as the
/// agent it runs, and keep reading the snapshot's own keys.
@Suite struct AgentSnapshotTests {
    func decode(_ json: String) throws -> AgentSnapshot {
        try JSONDecoder().decode(AgentSnapshot.self, from: Data(json.utf8))
    }

    @Test func readsTheSDKAgentResource() throws {
        let agent = try decode(
            """
            {"type": "agent", "id": "agent_1", "version": 2, "name": "grader", "system": "Grade.",
             "model": {"id": "claude-sonnet-4-5", "speed": "standard"},
             "tools": [
               {"type": "agent_toolset_20260401",
                "default_config": {"enabled": true, "permission_policy": {"type": "always_allow"}},
                "configs": [{"type": "bash", "name": "bash", "enabled": false, "permission_policy": {"type": "always_allow"}},
                            {"type": "write", "name": "write", "enabled": true, "permission_policy": {"type": "always_ask"}}]},
               {"type": "custom", "name": "lookup", "description": "Looks up", "input_schema": {"type": "object"}}],
             "mcp_servers": [], "skills": [], "metadata": {}}
            """)
        #expect(agent.model == "claude-sonnet-4-5")
        #expect(agent.system == "Grade.")
        #expect(agent.customTools.map(\.name) == ["lookup"])
        #expect(!agent.toolset.isEnabled("bash") && agent.toolset.isEnabled("read"))
        #expect(agent.toolset.asks("write") && !agent.toolset.asks("read"))
    }

    @Test func anSDKAgentWithoutTheToolsetHasNoBuiltInTools() throws {
        let agent = try decode(#"{"model": "claude-sonnet-4-5", "tools": [{"type": "custom", "name": "t", "description": "d", "input_schema": {}}]}"#)
        #expect(!agent.toolset.isEnabled("bash"))
        #expect(agent.customTools.count == 1)
    }

    @Test func keepsReadingSnapshotKeys() throws {
        let original = AgentSnapshot(
            model: "m", system: "s", maxTokens: 99, customTools: [.init(name: "x", description: "d", inputSchema: .object([:]))])
        #expect(try decode(original.json) == original)
        #expect(throws: DecodingError.self) { try decode(#"{"model": 5}"#) }
    }
}
