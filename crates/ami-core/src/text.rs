//! Text as people type it: one Unicode form for what is stored, a folded
//! form for search, and the characters a name must not hide.

use unicode_normalization::char::is_combining_mark;
use unicode_normalization::UnicodeNormalization;

/// The text in Unicode normalization form C, so that « é » typed as one
/// character or as « e » and a combining accent is stored the same way.
pub fn nfc(text: &str) -> String {
    text.nfc().collect()
}

/// The form search compares: accents and case removed, ligatures spelt
/// out, and every run of other characters (spaces, hyphens, apostrophes,
/// punctuation) made one space. « Saint-Dié-des-Vosges » and « saint die »
/// both fold to words that `saint die` finds; the result holds no LIKE
/// wildcard.
pub fn search_key(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut pending_space = false;
    for c in text.nfkd().filter(|c| !is_combining_mark(*c)) {
        if c.is_alphanumeric() {
            if pending_space && !out.is_empty() {
                out.push(' ');
            }
            pending_space = false;
            match c {
                'œ' | 'Œ' => out.push_str("oe"),
                'æ' | 'Æ' => out.push_str("ae"),
                'ß' => out.push_str("ss"),
                _ => out.extend(c.to_lowercase()),
            }
        } else {
            pending_space = true;
        }
    }
    out
}

/// Whether the text holds a character that is not seen but changes what is
/// read: control characters, and format characters such as zero-width
/// spaces (U+200B), joiners, bidirectional overrides (U+202E) and isolates,
/// the byte order mark, the soft hyphen and invisible operators.
pub fn has_hidden_chars(text: &str) -> bool {
    text.chars().any(is_hidden_char)
}

/// A character of [`has_hidden_chars`].
pub fn is_hidden_char(c: char) -> bool {
    HIDDEN_CHARS
        .iter()
        .any(|(from, to)| (*from..=*to).contains(&c))
}

/// The ranges of [`is_hidden_char`]: control characters (general category
/// Cc) and Unicode's format characters (Cf). One table for the check and for
/// the API's published patterns, so that both refuse the same text.
pub const HIDDEN_CHARS: &[(char, char)] = &[
    ('\u{0000}', '\u{001F}'),
    ('\u{007F}', '\u{009F}'),
    ('\u{00AD}', '\u{00AD}'),
    ('\u{0600}', '\u{0605}'),
    ('\u{061C}', '\u{061C}'),
    ('\u{06DD}', '\u{06DD}'),
    ('\u{070F}', '\u{070F}'),
    ('\u{0890}', '\u{0891}'),
    ('\u{08E2}', '\u{08E2}'),
    ('\u{180E}', '\u{180E}'),
    ('\u{200B}', '\u{200F}'),
    ('\u{202A}', '\u{202E}'),
    ('\u{2060}', '\u{2064}'),
    ('\u{2066}', '\u{206F}'),
    ('\u{FEFF}', '\u{FEFF}'),
    ('\u{FFF9}', '\u{FFFB}'),
    ('\u{110BD}', '\u{110BD}'),
    ('\u{110CD}', '\u{110CD}'),
    ('\u{13430}', '\u{1343F}'),
    ('\u{1BCA0}', '\u{1BCA3}'),
    ('\u{1D173}', '\u{1D17A}'),
    ('\u{E0001}', '\u{E0001}'),
    ('\u{E0020}', '\u{E007F}'),
];

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_table_is_the_control_characters_and_those_of_format() {
        // Cc is what `char::is_control` says; the Cf list is Unicode 15's.
        for c in (0..=0x10FFFFu32).filter_map(char::from_u32) {
            if c.is_control() {
                assert!(is_hidden_char(c), "{:?}", c);
            }
        }
        assert!(is_hidden_char('\u{202E}') && is_hidden_char('\u{FEFF}'));
        assert!(!is_hidden_char('é') && !is_hidden_char(' ') && !is_hidden_char('œ'));
    }

    #[test]
    fn decomposed_and_composed_accents_are_stored_alike() {
        let decomposed = "E\u{301}pinal";
        assert_ne!(decomposed, "Épinal");
        assert_eq!(nfc(decomposed), "Épinal");
    }

    #[test]
    fn search_keys_drop_accents_case_and_punctuation() {
        assert_eq!(search_key("Saint-Dié-des-Vosges"), "saint die des vosges");
        assert_eq!(search_key("  ÉPINAL "), "epinal");
        assert_eq!(search_key("E\u{301}pinal"), "epinal");
        assert_eq!(search_key("Château-Thierry"), "chateau thierry");
        assert_eq!(search_key("L'Isle-Adam"), "l isle adam");
        assert_eq!(search_key("Cœur de Ville"), "coeur de ville");
        assert_eq!(search_key("AMI2-V1-0007"), "ami2 v1 0007");
        assert_eq!(search_key("100%_sûr\\"), "100 sur");
    }

    #[test]
    fn invisible_and_bidirectional_characters_are_hidden_ones() {
        for c in [
            '\u{200B}', '\u{200D}', '\u{202E}', '\u{2066}', '\u{FEFF}', '\u{00AD}', '\0', '\n',
        ] {
            assert!(has_hidden_chars(&format!("Nev{c}ers")), "{:?}", c);
        }
        assert!(!has_hidden_chars("Saint-Dié-des-Vosges, L'Isle-Adam (Œ)"));
    }
}
