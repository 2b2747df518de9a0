// SquadMetric: the official SQuAD v1.1 evaluation (what evaluate's `squad` metric runs: normalize, token
// F1, exact match, max over the gold answers, 0–100) and the Muwa notebook's two additions before it:
// the gold expansion (digits ↔ words, simple fractions) and the containment rule (a gold answer found
// inside the prediction becomes the prediction). Pure functions, on Python string semantics
// (PythonText), so the numbers equal the Python ones exactly.

/// One question scored the Muwa way.
public struct SquadScore: Sendable, Equatable {
    /// The gold answers followed by the notebook's variants of them.
    public var expandedAnswers: [String]
    /// Index in `expandedAnswers` of the answer the containment rule found in the prediction.
    public var containedIndex: Int?
    /// The prediction after the containment rule.
    public var finalPrediction: String
    /// 0–100.
    public var f1: Double
    /// 0 or 100.
    public var exactMatch: Double
}

public enum SquadMetric {
    /// Python's `string.punctuation`: the ASCII punctuation the official script removes.
    static let punctuation: Set<Unicode.Scalar> = Set("!\"#$%&'()*+,-./:;<=>?@[\\]^_`{|}~".unicodeScalars)

    /// normalize_answer: lower, remove punctuation, remove articles (a|an|the as whole words), collapse
    /// whitespace.
    public static func normalize(_ text: String) -> String {
        normalizedTokens(text).map(PythonText.string).joined(separator: " ")
    }

    static func normalizedTokens(_ text: String) -> [Scalars] {
        let noPunctuation = PythonText.lower(text).filter { !punctuation.contains($0) }
        return PythonText.split(removeArticles(noPunctuation))
    }

    /// `re.sub(r"\b(a|an|the)\b", " ", text)`: scans left to right, a match must start and end at a word
    /// boundary (Python's Unicode `\w`), the alternatives are tried in order, matches do not overlap.
    static func removeArticles(_ text: Scalars) -> Scalars {
        let articles: [Scalars] = [["a"], ["a", "n"], ["t", "h", "e"]]
        func isWord(_ i: Int) -> Bool { i >= 0 && i < text.count && PythonText.isWord(text[i]) }
        var out = Scalars()
        out.reserveCapacity(text.count)
        var i = 0
        while i < text.count {
            var matched = 0
            if !isWord(i - 1) {  // every article starts with a word character, so \b here needs a non-word before
                for article in articles where i + article.count <= text.count {
                    if text[i..<(i + article.count)].elementsEqual(article) && !isWord(i + article.count) {
                        matched = article.count
                        break
                    }
                }
            }
            if matched > 0 {
                out.append(" ")
                i += matched
            } else {
                out.append(text[i])
                i += 1
            }
        }
        return out
    }

    /// f1_score of one prediction against one gold answer, 0–1 (0 when no token is shared, so also when
    /// both are empty: v1.1's rule).
    public static func f1(prediction: String, gold: String) -> Double {
        tokenF1(normalizedTokens(prediction), normalizedTokens(gold))
    }

    static func tokenF1(_ predictionTokens: [Scalars], _ goldTokens: [Scalars]) -> Double {
        var counts: [Scalars: Int] = [:]
        for t in goldTokens { counts[t, default: 0] += 1 }
        var numSame = 0
        for t in predictionTokens {
            if let c = counts[t], c > 0 {
                counts[t] = c - 1
                numSame += 1
            }
        }
        if numSame == 0 { return 0 }
        let precision = 1.0 * Double(numSame) / Double(predictionTokens.count)
        let recall = 1.0 * Double(numSame) / Double(goldTokens.count)
        return (2 * precision * recall) / (precision + recall)
    }

    /// exact_match_score: the normalized strings are equal (code point by code point).
    public static func exactMatch(prediction: String, gold: String) -> Bool {
        normalizedTokens(prediction) == normalizedTokens(gold)
    }

    /// The official score of one question: max over the gold answers, scaled to 0–100 as compute_score
    /// does with a single question (`100.0 * value / 1`). No answers: both 0.
    public static func score(prediction: String, answers: [String]) -> (f1: Double, exactMatch: Double) {
        let p = normalizedTokens(prediction)
        var bestF1 = 0.0, bestEM = false
        for gold in answers {
            let g = normalizedTokens(gold)
            bestF1 = max(bestF1, tokenF1(p, g))
            bestEM = bestEM || p == g
        }
        return (100.0 * bestF1 / 1, bestEM ? 100.0 : 0.0)
    }

    /// The notebook's digit_or_text table (keys compared in lowercase).
    public static let variants: [String: String] = [
        "0": "zero", "1": "one", "2": "two", "3": "three", "4": "four", "5": "five", "6": "six", "7": "seven",
        "8": "eight", "9": "nine", "zero": "0", "one": "1", "two": "2", "three": "3", "four": "4", "five": "5",
        "six": "6", "seven": "7", "eight": "8", "nine": "9", "three hundred sixty": "360",
        "1/4": "one quarter", "1/2": "one half", "1/3": "one third", "2/3": "two thirds", "3/4": "three quarters",
        "4/5": "four fifths", "one quarter": "1/4", "half": "50%", "one half": "1/2", "one third": "1/3",
        "two thirds": "2/3", "three quarters": "3/4", "four fifths": "4/5",
    ]

    /// `variants` keyed by code points (a Swift String key would also match canonically equivalent text).
    private static let variantsByScalars: [Scalars: String] = Dictionary(
        uniqueKeysWithValues: variants.map { (PythonText.scalars($0.key), $0.value) })

    /// The answers, then for each answer (in order) whose lowercase form has a variant, that variant.
    public static func expand(_ answers: [String]) -> [String] {
        var out = answers
        for answer in answers {
            if let variant = variantsByScalars[PythonText.lower(answer)] { out.append(variant) }
        }
        return out
    }

    /// The notebook's containment rule: the first gold (in order) whose lowercase form is a substring of
    /// the lowercase prediction replaces the prediction.
    public static func contain(prediction: String, golds: [String]) -> (prediction: String, index: Int?) {
        let haystack = PythonText.lower(prediction)
        for (index, gold) in golds.enumerated() where PythonText.contains(haystack, PythonText.lower(gold)) {
            return (gold, index)
        }
        return (prediction, nil)
    }

    /// A question scored as the Muwa notebook did: expand, contain, then the official metric.
    public static func muwaScore(prediction: String, answers: [String]) -> SquadScore {
        let expanded = expand(answers)
        let (final, index) = contain(prediction: prediction, golds: expanded)
        let (f1, em) = score(prediction: final, answers: expanded)
        return SquadScore(
            expandedAnswers: expanded, containedIndex: index, finalPrediction: final, f1: f1,
            exactMatch: em)
    }
}
