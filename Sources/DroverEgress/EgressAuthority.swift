import Crypto
import DroverCore
import DroverTools
import Foundation
import NIOSSL
import SwiftASN1
import X509

/// The installation's own certificate authority, for the one case where the egress proxy must
/// read an HTTPS request: a credential's placeholder is to be replaced with its secret.
///
/// The proxy then ends the sandbox's TLS itself, with a certificate for the requested host that
/// this authority signs, and opens its own TLS connection to the host, checked against the
/// system's trust store. Sandboxes trust the authority's certificate (never its key, which stays
/// on the worker's host). Connections to hosts no credential names stay end-to-end tunnels.
public final class EgressAuthority: Sendable {
    /// The authority's certificate, PEM: what sandboxes add to their trust store.
    public let certificatePEM: String
    private let certificate: Certificate
    private let key: Certificate.PrivateKey
    /// Every minted certificate shares one key: a leaf's key guards nothing a sandbox could not
    /// reach anyway, and a fresh P-256 key per host would cost more than the signature.
    private let leafPublicKey: Certificate.PublicKey
    private let leafKeyForTLS: NIOSSLPrivateKey
    /// How the proxy talks TLS to destinations: the system's roots, plus `extraRoots`.
    public let upstreamContext: NIOSSLContext
    private let serverContexts = Locked([String: (context: NIOSSLContext, expires: Date)]())

    public struct Failure: Error, CustomStringConvertible {
        public let description: String
    }

    /// How long a minted certificate is served before a fresh one is made.
    static let leafLifetime: TimeInterval = 7 * 24 * 3600
    /// Minted contexts kept, by host; past this the oldest half is dropped.
    static let cachedHosts = 512

    init(certificate: Certificate, key: P256.Signing.PrivateKey, extraRoots: [NIOSSLCertificate]) throws {
        self.certificate = certificate
        self.key = Certificate.PrivateKey(key)
        certificatePEM = try certificate.serializeAsPEM().pemString
        let leafKey = P256.Signing.PrivateKey()
        leafPublicKey = Certificate.PublicKey(leafKey.publicKey)
        leafKeyForTLS = try NIOSSLPrivateKey(bytes: Array(leafKey.pemRepresentation.utf8), format: .pem)
        var client = TLSConfiguration.makeClientConfiguration()
        client.applicationProtocols = ["http/1.1"]
        if !extraRoots.isEmpty { client.additionalTrustRoots = [.certificates(extraRoots)] }
        upstreamContext = try NIOSSLContext(configuration: client)
    }

    /// The authority kept in `directory` (`ca.pem` and `ca-key.pem`, 0600), made there on first
    /// use. `extraRoots` are PEM files of further authorities destinations may be signed by (an
    /// operator's internal CA; a test's own server).
    public static func load(directory: URL, extraRoots: [URL] = []) throws -> EgressAuthority {
        let certificateFile = directory.appendingPathComponent("ca.pem")
        let keyFile = directory.appendingPathComponent("ca-key.pem")
        var roots: [NIOSSLCertificate] = []
        for file in extraRoots {
            do {
                roots += try NIOSSLCertificate.fromPEMFile(file.path)
            } catch {
                throw Failure(description: "DROVER_EGRESS_TRUST: \(file.path) is not a readable PEM certificate file (\(error))")
            }
        }
        if let existing = try? String(contentsOf: keyFile, encoding: .utf8), let pem = try? String(contentsOf: certificateFile, encoding: .utf8) {
            do {
                let key = try P256.Signing.PrivateKey(pemRepresentation: existing)
                let certificate = try Certificate(pemEncoded: pem)
                // A certificate past its time, or not this key's, is made anew: sandboxes take
                // the authority's certificate when they start, so nothing else holds the old one.
                if certificate.notValidAfter > Date().addingTimeInterval(30 * 24 * 3600),
                    certificate.publicKey == Certificate.PublicKey(key.publicKey)
                {
                    return try EgressAuthority(certificate: certificate, key: key, extraRoots: roots)
                }
            } catch {
                throw Failure(
                    description:
                        "the egress authority in \(directory.path) cannot be read (\(error)); remove ca.pem and ca-key.pem there to make a new one")
            }
        }
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true, attributes: [.posixPermissions: 0o700])
        let key = P256.Signing.PrivateKey()
        let certificate = try makeAuthority(key: key)
        try write(key.pemRepresentation, to: keyFile)
        try write(try certificate.serializeAsPEM().pemString, to: certificateFile)
        return try EgressAuthority(certificate: certificate, key: key, extraRoots: roots)
    }

    /// An authority that lives in memory only (tests, benchmarks).
    public static func ephemeral(extraRoots: [NIOSSLCertificate] = []) throws -> EgressAuthority {
        let key = P256.Signing.PrivateKey()
        return try EgressAuthority(certificate: try makeAuthority(key: key), key: key, extraRoots: extraRoots)
    }

    /// Writes through a fresh temporary file, 0600 from its creation, renamed into place.
    private static func write(_ text: String, to file: URL) throws {
        let temporary = file.deletingLastPathComponent().appendingPathComponent(".\(file.lastPathComponent).\(getpid()).tmp")
        unlink(temporary.path)
        let fd = open(temporary.path, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0o600)
        guard fd >= 0 else { throw Failure(description: "cannot write \(temporary.path): \(String(cString: strerror(errno)))") }
        let bytes = Array(text.utf8)
        let written = bytes.withUnsafeBytes { Foundation.write(fd, $0.baseAddress, $0.count) }
        let synced = fsync(fd) == 0
        close(fd)
        guard written == bytes.count, synced, rename(temporary.path, file.path) == 0 else {
            unlink(temporary.path)
            throw Failure(description: "cannot write \(file.path): \(String(cString: strerror(errno)))")
        }
    }

    private static func makeAuthority(key: P256.Signing.PrivateKey) throws -> Certificate {
        let name = try DistinguishedName {
            OrganizationName("Drover")
            CommonName("Drover egress authority \(Identifier.make(prefix: "ca").suffix(8))")
        }
        let publicKey = Certificate.PublicKey(key.publicKey)
        let now = Date()
        return try Certificate(
            version: .v3, serialNumber: .init(), publicKey: publicKey, notValidBefore: now.addingTimeInterval(-3600),
            notValidAfter: now.addingTimeInterval(10 * 365 * 24 * 3600), issuer: name, subject: name, signatureAlgorithm: .ecdsaWithSHA256,
            extensions: try Certificate.Extensions {
                Critical(BasicConstraints.isCertificateAuthority(maxPathLength: 0))
                Critical(KeyUsage(keyCertSign: true, cRLSign: true))
                SubjectKeyIdentifier(hash: publicKey)
            },
            issuerPrivateKey: .init(key))
    }

    /// A TLS server context presenting a certificate for `host` (a name or an IP literal), signed
    /// by this authority; made once per host and reused until it nears its end.
    public func serverContext(for host: String) throws -> NIOSSLContext {
        let host = HostPattern.normalize(host)
        let now = Date()
        if let cached = serverContexts.withLock({ $0[host] }), cached.expires > now { return cached.context }
        let leaf = try mint(host: host, now: now)
        var configuration = TLSConfiguration.makeServerConfiguration(
            certificateChain: [.certificate(try NIOSSLCertificate(bytes: try leaf.serializeAsPEM().derBytes, format: .der))],
            privateKey: .privateKey(leafKeyForTLS))
        configuration.applicationProtocols = ["http/1.1"]
        let context = try NIOSSLContext(configuration: configuration)
        serverContexts.withLock { contexts in
            if contexts.count >= Self.cachedHosts {
                for key in contexts.sorted(by: { $0.value.expires < $1.value.expires }).prefix(Self.cachedHosts / 2).map(\.key) {
                    contexts[key] = nil
                }
            }
            // Served until a day before the certificate ends, so no client sees it expire.
            contexts[host] = (context, now.addingTimeInterval(Self.leafLifetime - 24 * 3600))
        }
        return context
    }

    func mint(host: String, now: Date) throws -> Certificate {
        let name: GeneralName
        if let address = IPAddressClass.bytes(of: host) {
            name = .ipAddress(ASN1OctetString(contentBytes: ArraySlice(address)))
        } else {
            name = .dnsName(host)
        }
        let subject = try DistinguishedName { CommonName(String(host.prefix(64))) }
        return try Certificate(
            version: .v3, serialNumber: .init(), publicKey: leafPublicKey, notValidBefore: now.addingTimeInterval(-3600),
            notValidAfter: now.addingTimeInterval(Self.leafLifetime), issuer: certificate.subject, subject: subject,
            signatureAlgorithm: .ecdsaWithSHA256,
            extensions: try Certificate.Extensions {
                Critical(BasicConstraints.notCertificateAuthority)
                Critical(KeyUsage(digitalSignature: true))
                try ExtendedKeyUsage([.serverAuth])
                SubjectAlternativeNames([name])
                AuthorityKeyIdentifier(keyIdentifier: SubjectKeyIdentifier(hash: certificate.publicKey).keyIdentifier)
            },
            issuerPrivateKey: key)
    }
}
