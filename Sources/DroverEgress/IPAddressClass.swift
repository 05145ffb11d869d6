import Foundation

/// An IP address as the proxy is about to connect to it, classified: only `public` addresses are
/// reachable without being named exactly in `allowed_hosts`. Everything that can lead back into
/// the host or its network (loopback, private ranges, link-local with the cloud metadata service
/// at 169.254.169.254, carrier-grade NAT, multicast and reserved ranges) is not public, and
/// neither are the IPv6 forms that wrap an IPv4 address (mapped, NAT64, 6to4), which are judged
/// by the address they wrap. The host's own addresses, whatever their range, are refused by
/// `EgressGate` (`thisHost`).
///
/// The documentation ranges (192.0.2.0/24, 198.51.100.0/24, 203.0.113.0/24, 2001:db8::/32) count
/// as public: no real network uses them, so they lead into nobody's, and test and mirror setups
/// do use them for stand-ins of public hosts.
public enum IPAddressClass: String, Sendable, Equatable {
    case `public`
    case loopback
    case `private`
    case linkLocal = "link-local"
    case unspecified
    case multicast
    case reserved
    /// One of the host's own interface addresses (set by `EgressGate`, not by the address alone).
    case thisHost = "this host's"

    /// Classifies 4 (IPv4) or 16 (IPv6) bytes in network order.
    public init(bytes: [UInt8]) {
        switch bytes.count {
        case 4: self = Self.classify(v4: bytes)
        case 16: self = Self.classify(v6: bytes)
        default: self = .reserved
        }
    }

    /// Parses a textual IPv4 or IPv6 address; nil when `text` is not one.
    public init?(address text: String) {
        guard let bytes = Self.bytes(of: text) else { return nil }
        self.init(bytes: bytes)
    }

    public static func bytes(of text: String) -> [UInt8]? {
        var v4 = in_addr()
        if inet_pton(AF_INET, text, &v4) == 1 {
            return withUnsafeBytes(of: &v4) { Array($0) }
        }
        var v6 = in6_addr()
        if inet_pton(AF_INET6, text, &v6) == 1 {
            return withUnsafeBytes(of: &v6) { Array($0) }
        }
        return nil
    }

    private static func classify(v4 b: [UInt8]) -> IPAddressClass {
        switch (b[0], b[1], b[2]) {
        case (0, _, _): return b == [0, 0, 0, 0] ? .unspecified : .reserved
        case (10, _, _): return .private
        case (100, 64...127, _): return .private  // carrier-grade NAT
        case (127, _, _): return .loopback
        case (169, 254, _): return .linkLocal
        case (172, 16...31, _): return .private
        case (192, 0, 0): return .reserved  // IETF protocol assignments
        case (192, 88, 99): return .reserved  // 6to4 relay anycast
        case (192, 168, _): return .private
        case (198, 18...19, _): return .private  // benchmarking networks
        case (224...239, _, _): return .multicast
        case (240...255, _, _): return .reserved  // and the broadcast address
        default: return .public
        }
    }

    private static func classify(v6 b: [UInt8]) -> IPAddressClass {
        let zeros = b.prefix(10).allSatisfy { $0 == 0 }
        if b.allSatisfy({ $0 == 0 }) { return .unspecified }
        if b.prefix(15).allSatisfy({ $0 == 0 }) && b[15] == 1 { return .loopback }
        // ::ffff:a.b.c.d (mapped) and ::a.b.c.d (the deprecated compatible form).
        if zeros && ((b[10] == 0xff && b[11] == 0xff) || (b[10] == 0 && b[11] == 0)) { return classify(v4: Array(b[12..<16])) }
        // 64:ff9b::/96 and 64:ff9b:1::/48 translate to IPv4 through NAT64.
        if b[0] == 0x00, b[1] == 0x64, b[2] == 0xff, b[3] == 0x9b { return classify(v4: Array(b[12..<16])) }
        // 2002::/16, 6to4: the next four bytes are an IPv4 address.
        if b[0] == 0x20, b[1] == 0x02 { return classify(v4: Array(b[2..<6])) }
        if b[0] == 0x20, b[1] == 0x01, b[2] == 0x00, b[3] == 0x00 { return .reserved }  // Teredo wraps IPv4 too
        if b[0] == 0x01, b.dropFirst().prefix(7).allSatisfy({ $0 == 0 }) { return .reserved }  // 100::/64, discard
        if b[0] & 0xfe == 0xfc { return .private }  // unique local
        if b[0] == 0xfe, b[1] & 0xc0 == 0x80 { return .linkLocal }
        if b[0] == 0xfe, b[1] & 0xc0 == 0xc0 { return .private }  // site-local, deprecated
        if b[0] == 0xff { return .multicast }
        // Only 2000::/3 is global unicast; the rest is unassigned.
        return b[0] & 0xe0 == 0x20 ? .public : .reserved
    }
}
