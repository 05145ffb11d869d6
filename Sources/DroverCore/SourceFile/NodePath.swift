import Yams

extension Node {
    /// The node a field path such as `tools[0].configs[1].name` names, or the deepest one of its
    /// ancestors that exists: where a file's error about that field points.
    public func descendant(at fieldPath: String) -> Node {
        var node = self
        for part in fieldPath.split(separator: ".", omittingEmptySubsequences: true) {
            var rest = Substring(part)
            let key = rest.prefix { $0 != "[" }
            rest = rest.dropFirst(key.count)
            if !key.isEmpty {
                guard let value = node.mapping?.first(where: { $0.key.string == String(key) })?.value else { return node }
                node = value
            }
            while rest.first == "[", let close = rest.firstIndex(of: "]") {
                guard let index = Int(rest[rest.index(after: rest.startIndex)..<close]),
                    let items = node.sequence, items.indices.contains(index)
                else { return node }
                node = items[index]
                rest = rest[rest.index(after: close)...]
            }
        }
        return node
    }
}
