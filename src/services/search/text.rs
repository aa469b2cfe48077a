//! Text to search tokens, the same way for documents and queries, so that 外贸 meets 外貿 and
//! "shipping" meets "shipped".
//!
//! 1. Unicode NFKC (full-width letters and digits become ASCII), lower case, Traditional Chinese to
//!    Simplified (OpenCC's t2s tables).
//! 2. Runs of letters and digits outside CJK become words, stemmed with Snowball's English stemmer.
//! 3. Runs of CJK characters become overlapping bigrams (外贸询盘 -> 外贸 贸询 询盘), plus each character
//!    alone in documents, so a one-character query finds something too.
//!
//! A query's tokens must all be present (AND): a Chinese query of n characters asks for its n-1
//! bigrams, which finds two-character words that word-based tokenizers and trigram indexes miss.

use std::sync::LazyLock;

use ferrous_opencc::OpenCC;
use ferrous_opencc::config::BuiltinConfig;
use rust_stemmers::{Algorithm, Stemmer};
use unicode_normalization::UnicodeNormalization;

static T2S: LazyLock<Option<OpenCC>> = LazyLock::new(|| match OpenCC::from_config(BuiltinConfig::T2s) {
    Ok(cc) => Some(cc),
    Err(err) => {
        // The tables are compiled in; failing to load them is a build defect. Search still works
        // within one script.
        tracing::error!(%err, "Traditional-to-Simplified tables did not load");
        None
    }
});
static STEMMER: LazyLock<Stemmer> = LazyLock::new(|| Stemmer::create(Algorithm::English));

/// Ideographs and the other scripts written without spaces that bigrams serve.
pub fn is_cjk(c: char) -> bool {
    matches!(c as u32,
        0x3040..=0x30FF      // Hiragana, Katakana
        | 0x3400..=0x4DBF    // CJK Extension A
        | 0x4E00..=0x9FFF    // CJK Unified Ideographs
        | 0xAC00..=0xD7AF    // Hangul syllables
        | 0xF900..=0xFAFF    // CJK Compatibility Ideographs
        | 0x20000..=0x2FA1F) // Extensions B-F and supplements
}

/// NFKC, lower case, Traditional to Simplified.
pub fn normalize(text: &str) -> String {
    let folded: String = text.nfkc().flat_map(char::to_lowercase).collect();
    match T2S.as_ref() {
        Some(cc) if folded.chars().any(is_cjk) => cc.convert(&folded),
        _ => folded,
    }
}

enum Run {
    Word(String),
    Cjk(Vec<char>),
}

fn runs(normalized: &str) -> Vec<Run> {
    let mut out = Vec::new();
    let mut word = String::new();
    let mut cjk = Vec::new();
    for c in normalized.chars() {
        if is_cjk(c) {
            if !word.is_empty() {
                out.push(Run::Word(std::mem::take(&mut word)));
            }
            cjk.push(c);
        } else if c.is_alphanumeric() {
            if !cjk.is_empty() {
                out.push(Run::Cjk(std::mem::take(&mut cjk)));
            }
            word.push(c);
        } else {
            if !word.is_empty() {
                out.push(Run::Word(std::mem::take(&mut word)));
            }
            if !cjk.is_empty() {
                out.push(Run::Cjk(std::mem::take(&mut cjk)));
            }
        }
    }
    if !word.is_empty() {
        out.push(Run::Word(word));
    }
    if !cjk.is_empty() {
        out.push(Run::Cjk(cjk));
    }
    out
}

fn stem(word: &str) -> String {
    STEMMER.stem(word).into_owned()
}

/// The tokens a document is indexed under, space separated (what both back ends store).
pub fn document_tokens(text: &str) -> String {
    let mut tokens = Vec::new();
    for run in runs(&normalize(text)) {
        match run {
            Run::Word(w) => tokens.push(stem(&w)),
            Run::Cjk(chars) => {
                tokens.extend(chars.iter().map(|c| c.to_string()));
                tokens.extend(chars.windows(2).map(|w| w.iter().collect::<String>()));
            }
        }
    }
    tokens.join(" ")
}

/// What a query asks for: tokens that must all match, and whether the last one is a prefix (the
/// user may still be typing it).
#[derive(Debug, PartialEq)]
pub struct QueryTokens {
    pub all: Vec<String>,
    pub last_is_prefix: bool,
    /// Normalised terms (word stems, whole CJK runs), for highlighting.
    pub terms: Vec<String>,
}

pub fn query_tokens(query: &str) -> QueryTokens {
    let mut all = Vec::new();
    let mut terms = Vec::new();
    let mut last_is_prefix = false;
    for run in runs(&normalize(query)) {
        match run {
            Run::Word(w) => {
                let stemmed = stem(&w);
                // The stem highlights every inflection ("ship" marks "shipped" and "shipping").
                terms.push(stemmed.clone());
                all.push(stemmed);
                last_is_prefix = true;
            }
            Run::Cjk(chars) => {
                if chars.len() == 1 {
                    all.push(chars[0].to_string());
                } else {
                    all.extend(chars.windows(2).map(|w| w.iter().collect::<String>()));
                }
                terms.push(chars.iter().collect());
                last_is_prefix = false;
            }
        }
    }
    all.dedup();
    QueryTokens { all, last_is_prefix, terms }
}

/// A highlighted stretch of an [`Excerpt`]'s text, in UTF-16 code units: what JavaScript, Swift
/// (`NSString`/`NSRange`) and Kotlin/Java strings index by, so clients apply it without converting.
/// A character outside the Basic Multilingual Plane (emoji, CJK Extension B) counts two.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Highlight {
    pub start: usize,
    pub length: usize,
}

/// The plain-text form of a snippet: the same excerpt, ellipses included, with no markup, and the
/// matches as ranges.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Excerpt {
    pub text: String,
    pub highlights: Vec<Highlight>,
}

/// The excerpt both forms are made from ([`Marked::html`] and [`Marked::plain`]): its characters,
/// each with whether it is part of a match, and whether text was cut before and after it.
pub struct Marked {
    chars: Vec<(char, bool)>,
    cut_before: bool,
    cut_after: bool,
}

/// Around the first match of `terms`, `width` characters. Matching is done on the normalised text,
/// so 外贸 marks 外貿; when normalisation changes the length (rare phrase conversions) the excerpt is
/// shown normalised. Line breaks become spaces.
pub fn mark(text: &str, terms: &[String], width: usize) -> Marked {
    let original: Vec<char> = text.chars().collect();
    let normalized: Vec<char> = normalize(text).chars().collect();
    let shown: &[char] = if normalized.len() == original.len() { &original } else { &normalized };
    let mut marked = vec![false; normalized.len()];
    for term in terms.iter().filter(|t| !t.is_empty()) {
        let t: Vec<char> = term.chars().collect();
        let latin = !t.iter().any(|c| is_cjk(*c));
        let mut i = 0;
        while i + t.len() <= normalized.len() {
            let starts_word = !latin || i == 0 || !normalized[i - 1].is_alphanumeric();
            if starts_word && normalized[i..i + t.len()] == t[..] {
                // A word term marks the whole word it begins ("ship" marks "shipping").
                let mut end = i + t.len();
                while latin && end < normalized.len() && normalized[end].is_alphanumeric() {
                    end += 1;
                }
                marked[i..end].iter_mut().for_each(|m| *m = true);
                i = end;
            } else {
                i += 1;
            }
        }
    }
    let first = marked.iter().position(|m| *m).unwrap_or(0);
    let start = first.saturating_sub(width / 3);
    let end = (start + width).min(shown.len());
    let chars = (start..end)
        .map(|i| {
            let c = match shown[i] {
                '\n' | '\r' => ' ',
                c => c,
            };
            (c, marked[i])
        })
        .collect();
    Marked { chars, cut_before: start > 0, cut_after: end < shown.len() }
}

/// An excerpt of `text` around the first match of `terms`, HTML-escaped, matches wrapped in
/// `<mark>`.
pub fn snippet(text: &str, terms: &[String], width: usize) -> String {
    mark(text, terms, width).html()
}

/// The same excerpt as [`snippet`], as plain text with the matches as UTF-16 ranges.
pub fn excerpt(text: &str, terms: &[String], width: usize) -> Excerpt {
    mark(text, terms, width).plain()
}

impl Marked {
    /// HTML-escaped, matches wrapped in `<mark>`, `…` where text was cut.
    pub fn html(&self) -> String {
        let m = self;
        let mut out = String::new();
        if m.cut_before {
            out.push('…');
        }
        let mut open = false;
        for &(c, marked) in &m.chars {
            if marked && !open {
                out.push_str("<mark>");
                open = true;
            } else if !marked && open {
                out.push_str("</mark>");
                open = false;
            }
            match c {
                '<' => out.push_str("&lt;"),
                '>' => out.push_str("&gt;"),
                '&' => out.push_str("&amp;"),
                '"' => out.push_str("&quot;"),
                '\'' => out.push_str("&#39;"),
                c => out.push(c),
            }
        }
        if open {
            out.push_str("</mark>");
        }
        if m.cut_after {
            out.push('…');
        }
        out
    }

    /// Plain text (no escaping), `…` where text was cut, and the matches as UTF-16 ranges.
    pub fn plain(&self) -> Excerpt {
        let m = self;
        let mut out = String::new();
        let mut highlights: Vec<Highlight> = Vec::new();
        // The position in UTF-16 code units of the next character.
        let mut at = 0;
        if m.cut_before {
            out.push('…');
            at += '…'.len_utf16();
        }
        let mut open: Option<usize> = None;
        for &(c, marked) in &m.chars {
            match (marked, open) {
                (true, None) => open = Some(at),
                (false, Some(start)) => {
                    highlights.push(Highlight { start, length: at - start });
                    open = None;
                }
                _ => {}
            }
            out.push(c);
            at += c.len_utf16();
        }
        if let Some(start) = open {
            highlights.push(Highlight { start, length: at - start });
        }
        if m.cut_after {
            out.push('…');
        }
        Excerpt { text: out, highlights }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn traditional_and_simplified_meet() {
        assert_eq!(document_tokens("外貿詢盤"), document_tokens("外贸询盘"));
        let q = query_tokens("詢盤");
        assert_eq!(q.all, vec!["询盘"]);
        assert!(document_tokens("外贸询盘 FOB").split(' ').any(|t| t == "询盘"));
    }

    #[test]
    fn english_is_stemmed_and_case_folded() {
        assert_eq!(query_tokens("Shipping FOB").all, vec!["ship", "fob"]);
        assert!(document_tokens("We shipped it").split(' ').any(|t| t == "ship"));
        assert_eq!(document_tokens("ＦＯＢ"), "fob", "full-width letters fold");
    }

    #[test]
    fn snippets_mark_matches_in_the_original_script() {
        let s = snippet("本月外貿詢盤很多 <b>", &["外贸".into()], 40);
        assert_eq!(s, "本月<mark>外貿</mark>詢盤很多 &lt;b&gt;");
        let s = snippet("Shipping rates rose", &["ship".into()], 40);
        assert_eq!(s, "<mark>Shipping</mark> rates rose");
    }

    /// Ranges in UTF-16 code units, as a JavaScript string would slice them.
    fn slices(e: &Excerpt) -> Vec<String> {
        let units: Vec<u16> = e.text.encode_utf16().collect();
        e.highlights.iter().map(|h| String::from_utf16_lossy(&units[h.start..h.start + h.length])).collect()
    }

    #[test]
    fn excerpts_carry_utf16_ranges_of_the_matches() {
        let e = excerpt("本月外貿詢盤很多 <b>\n外貿", &["外贸".into()], 40);
        assert_eq!(e.text, "本月外貿詢盤很多 <b> 外貿");
        assert_eq!(e.highlights, vec![Highlight { start: 2, length: 2 }, Highlight { start: 13, length: 2 }]);
        assert_eq!(slices(&e), vec!["外貿", "外貿"]);
        let e = excerpt("Shipping rates rose, we ship", &["ship".into(), "rate".into()], 40);
        assert_eq!(slices(&e), vec!["Shipping", "rates", "ship"]);
        // Characters outside the BMP count two units; the cut-off mark counts one.
        let e = excerpt("𠮷野家 😀 出口 報價", &["出口".into()], 40);
        assert_eq!(e.highlights, vec![Highlight { start: 8, length: 2 }]);
        assert_eq!(slices(&e), vec!["出口"]);
        let long = format!("{}出口{}", "很".repeat(100), "多".repeat(100));
        let e = excerpt(&long, &["出口".into()], 30);
        assert!(e.text.starts_with('…') && e.text.ends_with('…'));
        assert_eq!(slices(&e), vec!["出口"]);
        assert_eq!(e.text.chars().filter(|c| *c != '…').count(), 30);
    }
}
