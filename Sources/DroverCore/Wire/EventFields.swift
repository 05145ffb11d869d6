/// The fields of one event type, read from and written into the event's own JSON object
/// (the envelope `id`, `type` and `processed_at` live in `SessionEvent`).
protocol EventFields: Sendable, Hashable {
    init(reading reader: inout WireReader) throws(WireDecodingError)
    func write(to writer: inout WireWriter)
}

extension WireField where T == [ContentBlock] {
    static var contentBlocks: Self {
        .array(of: .wire(ContentBlock.self, "a content block object"), "an array of content blocks")
    }
}
