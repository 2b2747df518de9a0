// ByteEncoder: GPT-2's reversible table between the 256 byte values and 256 printable Unicode
// scalars (port of `bytes_to_unicode` in openai/gpt-2 encoder.py). Byte-level BPE vocabularies are
// written in this alphabet: the space byte 0x20 is "Ġ" (U+0120), the newline 0x0A is "Ċ" (U+010A).
//
// The printable bytes ("!"…"~", "¡"…"¬", "®"…"ÿ") map to themselves; the other 68 bytes, in
// ascending order, map to U+0100, U+0101, … .

enum ByteEncoder {
    /// byte → scalar of the byte-level alphabet.
    static let byteToScalar: [Unicode.Scalar] = {
        var table = [UInt32](repeating: 0, count: 256)
        var next: UInt32 = 256
        for byte in 0..<256 {
            if isPrintable(UInt8(byte)) {
                table[byte] = UInt32(byte)
            } else {
                table[byte] = next
                next += 1
            }
        }
        // Every value is either < 256 or in 256..<324: all valid scalars.
        return table.map { Unicode.Scalar($0) ?? "?" }
    }()

    /// Scalar value (< 324) of the byte-level alphabet → byte; -1 where the scalar is not in the alphabet.
    private static let scalarToByteTable: [Int16] = {
        var table = [Int16](repeating: -1, count: 324)
        for (byte, scalar) in byteToScalar.enumerated() {
            table[Int(scalar.value)] = Int16(byte)
        }
        return table
    }()

    /// The byte a scalar of the byte-level alphabet stands for, or nil for any other scalar.
    @inline(__always)
    static func byte(for scalar: Unicode.Scalar) -> UInt8? {
        let value = Int(scalar.value)
        guard value < scalarToByteTable.count else { return nil }
        let byte = scalarToByteTable[value]
        return byte < 0 ? nil : UInt8(byte)
    }

    /// The byte-level string of some raw bytes, e.g. [0x20, 0x74] → "Ġt".
    static func encode<S: Sequence>(_ bytes: S) -> String where S.Element == UInt8 {
        var scalars = String.UnicodeScalarView()
        for byte in bytes { scalars.append(byteToScalar[Int(byte)]) }
        return String(scalars)
    }

    /// The bytes a vocabulary entry stands for. As the `tokenizers` ByteLevel decoder does, a token
    /// holding any scalar outside the alphabet (an added token such as "<|user|>" typed in another
    /// script) stands for its own UTF-8 bytes instead.
    static func decode(_ token: String) -> [UInt8] {
        var bytes: [UInt8] = []
        bytes.reserveCapacity(token.unicodeScalars.count)
        for scalar in token.unicodeScalars {
            guard let byte = byte(for: scalar) else { return Array(token.utf8) }
            bytes.append(byte)
        }
        return bytes
    }

    private static func isPrintable(_ byte: UInt8) -> Bool {
        (0x21...0x7E).contains(byte) || (0xA1...0xAC).contains(byte) || (0xAE...0xFF).contains(byte)
    }
}
