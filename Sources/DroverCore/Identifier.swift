import Foundation

/// Time-ordered identifiers: a prefix, then 48 bits of milliseconds and 80 random bits in
/// Crockford base32. Sorting ids as strings sorts them by creation time.
public enum Identifier {
    private static let alphabet = Array("0123456789ABCDEFGHJKMNPQRSTVWXYZ".utf8)

    public static func make(prefix: String, now: Date = Date()) -> String {
        let millis = UInt64(max(0, now.timeIntervalSince1970 * 1000))
        var rng = SystemRandomNumberGenerator()
        let high = UInt64(rng.next() & 0xFFFF)  // 16 random bits
        let low = rng.next()  // 64 random bits
        var out = [UInt8]()
        out.reserveCapacity(26)
        // 48-bit time as 10 base32 digits (50 bits, top 2 are zero).
        for shift in stride(from: 45, through: 0, by: -5) {
            out.append(alphabet[Int((millis >> UInt64(shift)) & 31)])
        }
        // 80 random bits as 16 digits.
        for shift in stride(from: 75, through: 0, by: -5) {
            let bits: UInt64
            if shift >= 64 {
                bits = high >> UInt64(shift - 64)
            } else if shift > 59 {
                bits = (low >> UInt64(shift)) | (high << UInt64(64 - shift))
            } else {
                bits = low >> UInt64(shift)
            }
            out.append(alphabet[Int(bits & 31)])
        }
        return prefix + "_" + String(decoding: out, as: UTF8.self)
    }
}

/// The one rule for names and ids that become Redis keys, file names and URL parts (job and
/// schedule names, session ids): ASCII letters, digits, '-' and '_', and not empty.
public enum SafeName {
    public static func allows(_ text: String, maxLength: Int) -> Bool {
        !text.isEmpty && text.utf8.count <= maxLength
            && text.utf8.allSatisfy { byte in
                (byte >= UInt8(ascii: "a") && byte <= UInt8(ascii: "z")) || (byte >= UInt8(ascii: "A") && byte <= UInt8(ascii: "Z"))
                    || (byte >= UInt8(ascii: "0") && byte <= UInt8(ascii: "9")) || byte == UInt8(ascii: "-") || byte == UInt8(ascii: "_")
            }
    }
}
