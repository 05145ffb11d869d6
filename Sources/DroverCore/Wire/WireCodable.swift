import Foundation

/// A wire type that converts to and from `JSONValue`; `Codable` goes through that, so decoding
/// errors name the field (`[3].content[0].source`).
public protocol WireCodable: Codable, Sendable, Hashable {
    /// `path` names the value in errors; pass `""` at the top.
    init(wire value: JSONValue, path: String) throws(WireDecodingError)
    var wireValue: JSONValue { get }
}

extension WireCodable {
    public init(wire value: JSONValue) throws(WireDecodingError) {
        try self.init(wire: value, path: "")
    }

    public init(from decoder: any Decoder) throws {
        let value = try JSONValue(from: decoder)
        do {
            try self.init(wire: value, path: WirePath.from(decoder.codingPath))
        } catch {
            throw DecodingError.dataCorrupted(.init(codingPath: decoder.codingPath, debugDescription: error.description, underlyingError: error))
        }
    }

    public func encode(to encoder: any Encoder) throws {
        try wireValue.encode(to: encoder)
    }
}

/// What a typed object keeps beyond its typed fields, so that it re-encodes as it came:
/// fields this version does not know, and optional fields that were `null` rather than absent
/// (the SDK's `model_dump_json` writes `null` for every unset optional; its `to_json` omits them).
public struct WireExtras: Sendable, Hashable {
    public var unknownFields: [String: JSONValue]
    public var explicitNulls: Set<String>

    public init(unknownFields: [String: JSONValue] = [:], explicitNulls: Set<String> = []) {
        self.unknownFields = unknownFields
        self.explicitNulls = explicitNulls
    }

    public var isEmpty: Bool { unknownFields.isEmpty && explicitNulls.isEmpty }
}
