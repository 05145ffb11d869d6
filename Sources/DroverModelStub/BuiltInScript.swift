/// The script `drover serve`, `drover worker` and `drover model-stub` use when no other is
/// given: a playbook over the agent's real tools, so that the API does something useful with no
/// model key and every tool path is exercised. `docs/scripted-model.md` shows it; a test keeps
/// the two the same.
extension ModelScript {
    public static let builtInYAML = """
        # Drover's built-in scripted model: not a real model. For every message it lists
        # /workspace; for a message that names a file, it also reads that file. Then it replies
        # with what the tools returned.
        playbook:
          steps:
            - tool: bash
              input: {command: "ls -p /workspace"}
            - tool: read
              when: "{{named_file}}"
              input: {file_path: "/workspace/{{named_file}}"}
          final: |-
            Drover's scripted model (no ANTHROPIC_API_KEY is set, so no real model read your message). What the tools returned:

            {{results}}

        """

    /// `builtInYAML`, parsed.
    public static var builtIn: ModelScript {
        // The text is a constant that a test parses; it cannot fail here.
        try! parse(yaml: builtInYAML, file: "the built-in script")
    }
}
