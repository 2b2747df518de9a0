// FuzzInput: how one fuzz input stands for several files. The bytes are split at every occurrence of
// `separator`; targets with variants read a leading selector byte first. A missing part reads as
// absent (nil), so short inputs are still valid inputs.
//
//   [selector] part0 SEP part1 SEP part2 …
import Foundation

public struct FuzzInput: Sendable {
    /// Separates the files of one input; a line of its own so corpus files stay readable.
    public static let separator: [UInt8] = Array("\n--8<--\n".utf8)

    /// The whole input, unsplit.
    public let bytes: [UInt8]

    public init(_ bytes: [UInt8]) {
        self.bytes = bytes
    }

    /// (first byte, the rest); (0, []) for an empty input.
    public var selectorAndRest: (UInt8, [UInt8]) {
        guard let first = bytes.first else { return (0, []) }
        return (first, Array(bytes.dropFirst()))
    }

    /// `bytes` split at each separator (one part when there is none).
    public var parts: [[UInt8]] { Self.split(bytes) }

    /// `data` split at each occurrence of `separator`, left to right, non-overlapping.
    public static func split(_ data: [UInt8]) -> [[UInt8]] {
        let sep = separator
        var parts: [[UInt8]] = []
        var start = 0, i = 0
        while i + sep.count <= data.count {
            if data[i] == sep[0], data[i..<(i + sep.count)].elementsEqual(sep) {
                parts.append(Array(data[start..<i]))
                i += sep.count
                start = i
            } else {
                i += 1
            }
        }
        parts.append(Array(data[start...]))
        return parts
    }

    /// Joins files into one input (for building seeds and tests).
    public static func join(_ parts: [[UInt8]], selector: UInt8? = nil) -> [UInt8] {
        var out: [UInt8] = selector.map { [$0] } ?? []
        for (index, part) in parts.enumerated() {
            if index > 0 { out += separator }
            out += part
        }
        return out
    }
}

extension Array where Element == [UInt8] {
    /// The part at `index`, or nil past the end.
    subscript(part index: Int) -> [UInt8]? { index < count ? self[index] : nil }
}
