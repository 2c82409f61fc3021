import Tensors

/// The simulated languages of the synthetic world: English, and two made-up stand-ins for other
/// languages — `de` (Latin script with umlauts, some words shared with English) and `zh` (words of
/// CJK characters, none shared with English). Neither is the real language.
enum SynthLanguage: Int, CaseIterable {
    case en, de, zh
}

/// Made-up words for every concept in every simulated language, and the filler words of caption
/// templates. Captions are token-id sequences; a token id names one word of one language:
/// concept words first (`((language · C) + concept) · 2 + j`, j < 2), then fillers.
struct SynthLexicon {
    /// `names[language][concept]`: the concept's name, 1 or 2 words (the same count in every language).
    let names: [[[String]]]
    /// Filler words per language: three prefix words ("a photo of"), then "with", then "and".
    static let fillers: [[String]] = [
        ["a", "photo", "of", "with", "and"],
        ["ein", "bild", "von", "mit", "und"],
        ["一张", "照片", "里", "带", "和"],
    ]
    let concepts: Int

    /// Number of token ids.
    var tokenCount: Int { SynthLanguage.allCases.count * concepts * 2 + SynthLanguage.allCases.count * 5 }

    func wordToken(_ lang: SynthLanguage, _ concept: Int, _ j: Int) -> Int { ((lang.rawValue * concepts) + concept) * 2 + j }
    func fillerToken(_ lang: SynthLanguage, _ k: Int) -> Int { SynthLanguage.allCases.count * concepts * 2 + lang.rawValue * 5 + k }

    /// The text of a token.
    func text(_ token: Int) -> String {
        let words = SynthLanguage.allCases.count * concepts * 2
        if token >= words { return SynthLexicon.fillers[(token - words) / 5][(token - words) % 5] }
        return names[token / 2 / concepts][(token / 2) % concepts][token % 2]
    }

    /// Whether a token is a concept word (not a filler), and whose.
    func concept(of token: Int) -> Int? {
        token < SynthLanguage.allCases.count * concepts * 2 ? (token / 2) % concepts : nil
    }

    /// Draws every concept's name in every language: English words of two or three syllables,
    /// `de` words likewise from another inventory (a `cognateRate` share spelled as in English),
    /// `zh` words of one or two CJK characters. Names are unique within a language.
    init(concepts: Int, cognateRate: Double, rng: inout SplitMix64) {
        self.concepts = concepts
        let fillerWords = Set(SynthLexicon.fillers.joined())
        var used: [Set<String>] = Array(repeating: fillerWords, count: 3)
        func fresh(_ lang: Int, _ make: () -> String) -> String {
            while true {
                let w = make()
                if used[lang].insert(w).inserted { return w }
            }
        }
        let enOnset = ["b", "d", "f", "g", "k", "l", "m", "n", "p", "r", "s", "t", "v", "z"]
        let enNucleus = ["a", "e", "i", "o", "u"]
        let enCoda = ["", "", "n", "r", "l", "x"]
        let deOnset = ["b", "d", "g", "h", "k", "w", "sch", "st", "kr", "br", "pf", "z"]
        let deNucleus = ["a", "e", "i", "o", "u", "ä", "ö", "ü", "ei", "au"]
        let deCoda = ["", "n", "r", "ch", "t", "ß"]
        func pick(_ a: [String], _ r: inout SplitMix64) -> String { a[r.below(a.count)] }
        func word(_ on: [String], _ nu: [String], _ co: [String], _ r: inout SplitMix64) -> String {
            (0..<(2 + r.below(2))).map { _ in pick(on, &r) + pick(nu, &r) }.joined() + pick(co, &r)
        }
        var en: [[String]] = [], de: [[String]] = [], zh: [[String]] = []
        for _ in 0..<concepts {
            let m = rng.uniform() < 0.6 ? 1 : 2
            var e: [String] = [], d: [String] = [], z: [String] = []
            for _ in 0..<m {
                let ew = fresh(0, { word(enOnset, enNucleus, enCoda, &rng) })
                e.append(ew)
                if rng.uniform() < cognateRate, used[1].insert(ew).inserted {
                    d.append(ew)
                } else {
                    d.append(fresh(1, { word(deOnset, deNucleus, deCoda, &rng) }))
                }
                z.append(fresh(2, {
                    String((0..<(1 + rng.below(2))).map { _ in Character(Unicode.Scalar(0x4E00 + UInt32(rng.below(2500)))!) })
                }))
            }
            // Names are padded to two entries so token ids stay fixed; only the first m are used.
            en.append(e); de.append(d); zh.append(z)
        }
        names = [en, de, zh]
    }

    /// Words in the name of `concept`.
    func nameLength(_ concept: Int) -> Int { names[0][concept].count }

    /// A caption listing `concepts` in order: "a photo of A with B with C and D" in `lang`.
    func caption(_ concepts: [Int], _ lang: SynthLanguage) -> [Int] {
        var t = (0..<3).map { fillerToken(lang, $0) }
        for (i, c) in concepts.enumerated() {
            if i > 0 { t.append(fillerToken(lang, i == concepts.count - 1 ? 4 : 3)) }
            for j in 0..<nameLength(c) { t.append(wordToken(lang, c, j)) }
        }
        return t
    }

    /// The text of a token sequence (`zh` without spaces).
    func text(_ tokens: [Int], _ lang: SynthLanguage) -> String {
        tokens.map(text).joined(separator: lang == .zh ? "" : " ")
    }
}
