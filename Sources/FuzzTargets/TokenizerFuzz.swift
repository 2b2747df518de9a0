// TokenizerFuzz: a tokenizer directory loaded as a model's tokenizer is, then used: the text is encoded
// and decoded (whole and token by token), and ids taken from the text's bytes — any value, negative or
// past the vocabulary — are decoded too. The streaming decoder's chunks must join to the whole decode.
//
//   tokenizer:  selector, then (bit 0 clear) vocab.json SEP merges.txt  or  (bit 0 set) tokenizer.json,
//               then tokenizer_config.json if bit 1, special_tokens_map.json if bit 2, then the text;
//               bit 3: skip special tokens when decoding; bit 4: clean up tokenization spaces.
import Foundation
import OPTEngine

enum TokenizerFuzz {
    /// Used when the input has no text part.
    static let defaultText = "Hello world! It's </s> a <pad> test:\n\t  naïve café 😀 1234 don't."

    static func run(_ input: FuzzInput) {
        let (selector, rest) = input.selectorAndRest
        var parts = FuzzInput.split(rest)[...]
        var files: [(String, [UInt8]?)] = []
        if selector & 1 == 0 {
            files.append(("vocab.json", parts.popFirst() ?? []))
            files.append(("merges.txt", parts.popFirst() ?? []))
        } else {
            files.append(("tokenizer.json", parts.popFirst() ?? []))
        }
        if selector & 2 != 0 { files.append(("tokenizer_config.json", parts.popFirst() ?? [])) }
        if selector & 4 != 0 { files.append(("special_tokens_map.json", parts.popFirst() ?? [])) }
        let textBytes = parts.popFirst()
        let text = textBytes.map { String(decoding: $0, as: UTF8.self) } ?? defaultText

        let dir = ScratchDirectory.reset(files)
        guard let tokenizer = attempt("BPETokenizer.load", { try BPETokenizer.load(directory: dir) }) else { return }
        use(
            tokenizer, text: text, rawIds: textBytes ?? [], skipSpecial: selector & 8 != 0,
            cleanUp: selector & 16 != 0)
    }

    static func use(_ tokenizer: BPETokenizer, text: String, rawIds: [UInt8], skipSpecial: Bool, cleanUp: Bool) {
        let size = tokenizer.vocabularySize
        for id in [tokenizer.bosTokenId, tokenizer.eosTokenId, tokenizer.padTokenId, tokenizer.unkTokenId] {
            precondition(id >= 0 && id < size, "special token id \(id) outside the vocabulary of \(size)")
        }
        let ids = tokenizer.encode(text)
        for id in ids {
            precondition(id >= 0 && id < size, "encode produced id \(id) outside the vocabulary of \(size)")
        }
        _ = tokenizer.encode(text, addBOS: false)

        let whole = tokenizer.decode(ids, skipSpecialTokens: skipSpecial)
        var streaming = StreamingDecoder(tokenizer: tokenizer, skipSpecialTokens: skipSpecial)
        var joined = ""
        for id in ids { joined += streaming.append(id) }
        joined += streaming.finish()
        precondition(joined == whole, "streaming decode differs from the whole decode")
        _ = tokenizer.decode(ids, skipSpecialTokens: skipSpecial, cleanUpTokenizationSpaces: cleanUp)

        // Ids from the raw bytes, 4 at a time, as signed 32-bit numbers scaled up to reach past Int32.
        var arbitrary: [Int] = []
        var i = 0
        while i + 4 <= rawIds.count, arbitrary.count < 256 {
            let word = Int32(
                bitPattern: UInt32(rawIds[i]) | UInt32(rawIds[i + 1]) << 8
                    | UInt32(rawIds[i + 2]) << 16 | UInt32(rawIds[i + 3]) << 24)
            arbitrary.append(rawIds[i] & 1 == 0 ? Int(word) : Int(word) << 31)
            i += 4
        }
        _ = tokenizer.decode(arbitrary, skipSpecialTokens: skipSpecial, cleanUpTokenizationSpaces: cleanUp)
        var decoder = StreamingDecoder(tokenizer: tokenizer, skipSpecialTokens: skipSpecial)
        for id in arbitrary {
            _ = decoder.append(id)
            _ = tokenizer.tokenString(id)
            _ = tokenizer.isSpecial(id)
        }
        _ = decoder.finish()
    }
}
