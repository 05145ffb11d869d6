/// The words of context compaction, shared by the brain, which sends them, and the scripted
/// model, which recognises them as a real model reads them. docs/compaction.md quotes both.
public enum ContextCompaction {
    /// The last user text of a compaction request: the earlier part of the conversation goes
    /// before it, the model's answer becomes the summary.
    public static let prompt = """
        Your context window is nearly full, so the conversation so far is about to be replaced by your summary of it. \
        Write that summary now, as plain text, and call no tool. Keep everything you need to carry on the work without \
        the original messages: the user's task and every instruction in their exact words; what you have done, step by \
        step, with the tool calls that mattered and what they returned (numbers, file paths, identifiers and errors \
        exactly); what you have found so far; and what you were about to do next.
        """

    /// The first words of `prompt`: how a compaction request is recognised.
    public static let promptOpening = "Your context window is nearly full, so the conversation so far is about to be replaced"

    /// The user text a compacted context starts with.
    public static func continuation(summary: String) -> String {
        continuationOpening + "\n\n" + summary
    }

    public static let continuationOpening =
        "This conversation continues from an earlier part that no longer fits in the context window. Your summary of that part:"
}
