//! UMT5 prompt preparation for LingBot-VA: prompt cleaning and tokenization to a fixed length.
//!
//! Upstream (`_get_t5_prompt_embeds`) cleans the task string (`clean_prompt`: HTML-unescape
//! twice, strip, collapse whitespace runs) and tokenizes it with `T5TokenizerFast`, padded to
//! `max_length` with truncation and `</s>` appended. [`prepare_prompt`] does both;
//! [`clean_prompt`] and [`encode_prompt`] are the two steps.

use super::PreprocessError;
use tokenizers::{
    PaddingDirection, PaddingParams, PaddingStrategy, Tokenizer, TruncationDirection,
    TruncationParams, TruncationStrategy,
};

/// T5's padding token (`T5Tokenizer`'s default `pad_token`; id 0 in the UMT5 vocabulary).
pub const PAD_TOKEN: &str = "<pad>";

/// The prompt as upstream feeds it to the tokenizer: [`html_unescape`] twice, then Python's
/// `strip()` and `re.sub(r"\s+", " ", ...)` with their Unicode notion of whitespace.
pub fn clean_prompt(text: &str) -> String {
    let unescaped = html_unescape(&html_unescape(text));
    let mut out = String::with_capacity(unescaped.len());
    for word in unescaped
        .split(is_python_whitespace)
        .filter(|w| !w.is_empty())
    {
        if !out.is_empty() {
            out.push(' ');
        }
        out.push_str(word);
    }
    out
}

/// Token ids and attention mask of `text` (already cleaned), as
/// `T5TokenizerFast(text, padding="max_length", max_length=max_len, truncation=True,
/// add_special_tokens=True)` gives them: the tokenizer's post-processor appends `</s>`, a
/// longer text is cut so that the `</s>` still ends it, and [`PAD_TOKEN`] fills the rest
/// (mask 0). Both vectors have `max_len` entries.
pub fn encode_prompt(
    tokenizer: &Tokenizer,
    text: &str,
    max_len: usize,
) -> Result<(Vec<i64>, Vec<i64>), PreprocessError> {
    let failed = |reason: String| PreprocessError::PromptEncoding {
        text: text.to_string(),
        reason,
    };
    let pad_id = tokenizer
        .token_to_id(PAD_TOKEN)
        .ok_or_else(|| failed(format!("the tokenizer has no `{PAD_TOKEN}` token")))?;
    let mut fixed = tokenizer.clone();
    fixed
        .with_truncation(Some(TruncationParams {
            direction: TruncationDirection::Right,
            max_length: max_len,
            strategy: TruncationStrategy::LongestFirst,
            stride: 0,
        }))
        .map_err(|e| failed(format!("truncation to {max_len}: {e}")))?;
    fixed.with_padding(Some(PaddingParams {
        strategy: PaddingStrategy::Fixed(max_len),
        direction: PaddingDirection::Right,
        pad_to_multiple_of: None,
        pad_id,
        pad_type_id: 0,
        pad_token: PAD_TOKEN.to_string(),
    }));
    let encoding = fixed
        .encode(text, true)
        .map_err(|e| failed(e.to_string()))?;
    let ids: Vec<i64> = encoding.get_ids().iter().map(|&id| id as i64).collect();
    let mask: Vec<i64> = encoding
        .get_attention_mask()
        .iter()
        .map(|&m| m as i64)
        .collect();
    if ids.len() != max_len || mask.len() != max_len {
        return Err(failed(format!(
            "encoded to {} ids, expected {max_len}",
            ids.len()
        )));
    }
    Ok((ids, mask))
}

/// [`clean_prompt`] then [`encode_prompt`]: what upstream tokenizes for a task string.
pub fn prepare_prompt(
    tokenizer: &Tokenizer,
    prompt: &str,
    max_len: usize,
) -> Result<(Vec<i64>, Vec<i64>), PreprocessError> {
    encode_prompt(tokenizer, &clean_prompt(prompt), max_len)
}

/// Python's `str.isspace()` (what `\s` and `strip()` match): Unicode `White_Space` plus the
/// information separators U+001C..U+001F.
fn is_python_whitespace(c: char) -> bool {
    c.is_whitespace() || ('\u{1c}'..='\u{1f}').contains(&c)
}

/// Python's `html.unescape`: every named character reference of HTML5 (the legacy ones also
/// without `;`, and as the longest prefix of an unknown name), and decimal/hex references with
/// or without `;`, with HTML5's replacements for invalid code points.
pub fn html_unescape(text: &str) -> String {
    if !text.contains('&') {
        return text.to_string();
    }
    let chars: Vec<char> = text.chars().collect();
    let mut out = String::with_capacity(text.len());
    let mut i = 0;
    while i < chars.len() {
        if chars[i] == '&' {
            if let Some((replacement, consumed)) = character_reference(&chars[i + 1..]) {
                out.push_str(&replacement);
                i += 1 + consumed;
                continue;
            }
        }
        out.push(chars[i]);
        i += 1;
    }
    out
}

/// The replacement for the reference that starts right after a `&`, and how many chars it
/// spans; `None` where Python's pattern does not match (the `&` stays as is).
fn character_reference(rest: &[char]) -> Option<(String, usize)> {
    if rest.first() == Some(&'#') {
        return numeric_reference(&rest[1..]).map(|(s, n)| (s, n + 1));
    }
    named_reference(rest)
}

/// `#[0-9]+;?` or `#[xX][0-9a-fA-F]+;?`, `rest` starting after the `#`.
fn numeric_reference(rest: &[char]) -> Option<(String, usize)> {
    let (radix, start) = match rest.first() {
        Some('x') | Some('X') => (16, 1),
        _ => (10, 0),
    };
    let digits = rest[start..]
        .iter()
        .take_while(|c| c.is_digit(radix))
        .count();
    if digits == 0 {
        return None;
    }
    let mut consumed = start + digits;
    if rest.get(consumed) == Some(&';') {
        consumed += 1;
    }
    let number: String = rest[start..start + digits].iter().collect();
    // Overflow means a number far past U+10FFFF, which Python also replaces.
    let code = u32::from_str_radix(&number, radix).unwrap_or(u32::MAX);
    Some((numeric_replacement(code), consumed))
}

/// Python's `html._replace_charref` for a number.
fn numeric_replacement(code: u32) -> String {
    if code == 0 {
        return '\u{FFFD}'.to_string();
    }
    if code == 0x0d {
        return '\r'.to_string();
    }
    if (0x80..=0x9f).contains(&code) {
        return WINDOWS_1252_C1[(code - 0x80) as usize].to_string();
    }
    if (0xD800..=0xDFFF).contains(&code) || code > 0x10FFFF {
        return '\u{FFFD}'.to_string();
    }
    let invalid = (0x01..=0x08).contains(&code)
        || code == 0x0b
        || (0x0e..=0x1f).contains(&code)
        || code == 0x7f
        || (0xFDD0..=0xFDEF).contains(&code)
        || (code & 0xFFFE) == 0xFFFE;
    if invalid {
        return String::new();
    }
    char::from_u32(code).map(String::from).unwrap_or_default()
}

/// How HTML5 (and Python) read the references `&#128;` … `&#159;`: as windows-1252.
const WINDOWS_1252_C1: [char; 32] = [
    '\u{20AC}', '\u{81}', '\u{201A}', '\u{0192}', '\u{201E}', '\u{2026}', '\u{2020}', '\u{2021}',
    '\u{02C6}', '\u{2030}', '\u{0160}', '\u{2039}', '\u{0152}', '\u{8D}', '\u{017D}', '\u{8F}',
    '\u{90}', '\u{2018}', '\u{2019}', '\u{201C}', '\u{201D}', '\u{2022}', '\u{2013}', '\u{2014}',
    '\u{02DC}', '\u{2122}', '\u{0161}', '\u{203A}', '\u{0153}', '\u{9D}', '\u{017E}', '\u{0178}',
];

/// `[^\t\n\f <&#;]{1,32};?`: the name, looked up whole, else its longest known legacy prefix
/// (at least 2 chars) with the remainder kept, else left as text.
fn named_reference(rest: &[char]) -> Option<(String, usize)> {
    let name_len = rest
        .iter()
        .take(32)
        .take_while(|c| !matches!(c, '\t' | '\n' | '\u{0C}' | ' ' | '<' | '&' | '#' | ';'))
        .count();
    if name_len == 0 {
        return None;
    }
    let name: String = rest[..name_len].iter().collect();
    let terminated = rest.get(name_len) == Some(&';');
    let consumed = name_len + usize::from(terminated);
    let whole = if terminated {
        terminated_entity(&name)
    } else {
        legacy_entity(&name)
    };
    if let Some(value) = whole {
        return Some((value.to_string(), consumed));
    }
    let span: String = rest[..consumed].iter().collect();
    for prefix_len in (2..consumed).rev() {
        let prefix: String = rest[..prefix_len].iter().collect();
        if let Some(value) = legacy_entity(&prefix) {
            let remainder: String = rest[prefix_len..consumed].iter().collect();
            return Some((format!("{value}{remainder}"), consumed));
        }
    }
    Some((format!("&{span}"), consumed))
}

/// The value of `&name;`.
fn terminated_entity(name: &str) -> Option<&'static str> {
    html_escape::NAMED_ENTITIES
        .binary_search_by(|(n, _)| n.cmp(&name.as_bytes()))
        .ok()
        .map(|i| html_escape::NAMED_ENTITIES[i].1)
}

/// The value of `&name` without `;`: HTML5 allows it only for these legacy names.
fn legacy_entity(name: &str) -> Option<&'static str> {
    LEGACY_NAMES
        .binary_search(&name)
        .ok()
        .and_then(|_| terminated_entity(name))
}

/// The named references HTML5 also recognises without a trailing `;` (sorted).
const LEGACY_NAMES: [&str; 106] = [
    "AElig", "AMP", "Aacute", "Acirc", "Agrave", "Aring", "Atilde", "Auml", "COPY", "Ccedil",
    "ETH", "Eacute", "Ecirc", "Egrave", "Euml", "GT", "Iacute", "Icirc", "Igrave", "Iuml", "LT",
    "Ntilde", "Oacute", "Ocirc", "Ograve", "Oslash", "Otilde", "Ouml", "QUOT", "REG", "THORN",
    "Uacute", "Ucirc", "Ugrave", "Uuml", "Yacute", "aacute", "acirc", "acute", "aelig", "agrave",
    "amp", "aring", "atilde", "auml", "brvbar", "ccedil", "cedil", "cent", "copy", "curren", "deg",
    "divide", "eacute", "ecirc", "egrave", "eth", "euml", "frac12", "frac14", "frac34", "gt",
    "iacute", "icirc", "iexcl", "igrave", "iquest", "iuml", "laquo", "lt", "macr", "micro",
    "middot", "nbsp", "not", "ntilde", "oacute", "ocirc", "ograve", "ordf", "ordm", "oslash",
    "otilde", "ouml", "para", "plusmn", "pound", "quot", "raquo", "reg", "sect", "shy", "sup1",
    "sup2", "sup3", "szlig", "thorn", "times", "uacute", "ucirc", "ugrave", "uml", "uuml",
    "yacute", "yen", "yuml",
];

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn legacy_names_are_sorted_and_all_known_with_a_semicolon() {
        assert!(LEGACY_NAMES.windows(2).all(|w| w[0] < w[1]));
        for name in LEGACY_NAMES {
            assert!(terminated_entity(name).is_some(), "{name}");
        }
    }

    #[test]
    fn numeric_references_follow_html5_replacements() {
        assert_eq!(numeric_replacement(0x41), "A");
        assert_eq!(numeric_replacement(0), "\u{FFFD}");
        assert_eq!(numeric_replacement(0x80), "\u{20AC}");
        assert_eq!(numeric_replacement(0xD800), "\u{FFFD}");
        assert_eq!(numeric_replacement(0x110000), "\u{FFFD}");
        assert_eq!(numeric_replacement(0x0b), "");
        assert_eq!(numeric_replacement(0x1FFFF), "");
        assert_eq!(numeric_replacement(0x1F600), "\u{1F600}");
    }
}
