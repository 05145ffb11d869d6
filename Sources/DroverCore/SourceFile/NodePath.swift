import Yams

extension Node {
    /// The node a field path (`tools`, `[0]`, `configs`, ...) names, or the deepest one of its
    /// ancestors that exists: where a file's error about that field points.
    public func descendant(at codingPath: [any CodingKey]) -> Node {
        var node = self
        for key in codingPath {
            if let index = key.intValue {
                guard let items = node.sequence, items.indices.contains(index) else { return node }
                node = items[index]
            } else {
                guard let value = node.mapping?.first(where: { $0.key.string == key.stringValue })?.value else { return node }
                node = value
            }
        }
        return node
    }
}
