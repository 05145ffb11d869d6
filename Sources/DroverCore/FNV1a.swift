/// FNV-1a, 64 bits: a short hash that is the same in every process and on every run (Swift's
/// `Hasher` is seeded per process), for ids and spreads derived from a name.
public enum FNV1a {
    public static func hash(_ text: String) -> UInt64 {
        var hash: UInt64 = 14_695_981_039_346_656_037
        for byte in text.utf8 { hash = (hash ^ UInt64(byte)) &* 1_099_511_628_211 }
        return hash
    }
}
