private let lowercaseHexDigits = Array("0123456789abcdef".utf8)

extension Sequence<UInt8> {
    /// Lower-case hex, two digits a byte, as `String(format: "%02x")` per byte wrote it: a batch
    /// hashes every item's key, and formatting each byte through Foundation cost a hundred times
    /// this.
    public var lowercaseHex: String {
        var text: [UInt8] = []
        text.reserveCapacity(underestimatedCount * 2)
        for byte in self {
            text.append(lowercaseHexDigits[Int(byte >> 4)])
            text.append(lowercaseHexDigits[Int(byte & 0x0F)])
        }
        return String(decoding: text, as: UTF8.self)
    }
}
