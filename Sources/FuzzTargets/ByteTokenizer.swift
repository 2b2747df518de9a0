// ByteTokenizer: a small real BPETokenizer for the dataset target — GPT-2's 256 byte-level symbols, a
// few merges ("Ġt", "he", "Ġthe", "in", "Ġa") and OPT's special tokens — built in memory, so the dolly
// reader runs with a tokenizer without any file beside the fuzzer.
import OPTEngine

enum ByteTokenizer {
    static let shared: BPETokenizer = {
        var vocab: [String: Int] = [:]
        for (byte, symbol) in byteSymbols.enumerated() { vocab[symbol] = byte }
        let merges: [(String, String)] = [("Ġ", "t"), ("h", "e"), ("Ġt", "he"), ("i", "n"), ("Ġ", "a")]
        for (left, right) in merges where vocab[left + right] == nil { vocab[left + right] = vocab.count }
        do {
            return try BPETokenizer(vocab: vocab, merges: merges)
        } catch {
            preconditionFailure("the fuzz targets' byte-level tokenizer does not build: \(error)")
        }
    }()

    /// GPT-2's bytes_to_unicode: printable Latin-1 bytes stand for themselves, the others for U+0100….
    static let byteSymbols: [String] = {
        var next: UInt32 = 256
        return (0..<256).map { (byte: Int) -> String in
            let printable = (33...126).contains(byte) || (161...172).contains(byte) || (174...255).contains(byte)
            let value: UInt32
            if printable {
                value = UInt32(byte)
            } else {
                value = next
                next += 1
            }
            return String(Character(Unicode.Scalar(value)!))
        }
    }()
}
