//! Untrusted text made safe to show: the one escaping function for every place that prints a
//! policy's reason or log line, or a container name, image or error text from the daemon.
//!
//! Replacing control characters is not enough. Unicode *format* characters are invisible and
//! some reorder what follows them: U+202E (right-to-left override) placed before `txt.exe`
//! makes a name display as `exe.txt`, U+2066..U+2069 isolate runs, U+200B hides inside a
//! word so two names that look equal differ. A table or an audit line showing such text can
//! lie to the operator reading it. [`escape`] therefore writes every character of the classes
//! below as `\u{XXXX}`, visible and unambiguous, and leaves all other text unchanged:
//!
//! * control characters (Unicode `Cc`: C0, DEL, C1 — terminal escapes, new lines);
//! * format characters (`Cf`: bidirectional embeddings, overrides and isolates, marks,
//!   zero-width spaces and joiners, the byte-order mark, interlinear annotation, tags, …);
//! * line and paragraph separators (`Zl`, `Zp`);
//! * blank letters that render as nothing (the Hangul fillers, U+034F, U+115F, …).

use std::borrow::Cow;
use std::fmt::Write as _;

/// Inclusive ranges of the format (`Cf`) characters of Unicode 16, the `Zl`/`Zp` separators
/// and the invisible filler letters.
const INVISIBLE: &[(u32, u32)] = &[
    (0x00AD, 0x00AD),
    (0x034F, 0x034F),
    (0x0600, 0x0605),
    (0x061C, 0x061C),
    (0x06DD, 0x06DD),
    (0x070F, 0x070F),
    (0x0890, 0x0891),
    (0x08E2, 0x08E2),
    (0x115F, 0x1160),
    (0x17B4, 0x17B5),
    (0x180B, 0x180F),
    (0x200B, 0x200F),
    (0x2028, 0x202E),
    (0x2060, 0x2064),
    (0x2066, 0x206F),
    (0x3164, 0x3164),
    (0xFEFF, 0xFEFF),
    (0xFFA0, 0xFFA0),
    (0xFFF9, 0xFFFB),
    (0x110BD, 0x110BD),
    (0x110CD, 0x110CD),
    (0x13430, 0x1343F),
    (0x1BCA0, 0x1BCA3),
    (0x1D173, 0x1D17A),
    (0xE0001, 0xE0001),
    (0xE0020, 0xE007F),
];

/// Whether `c` is shown escaped by [`escape`].
pub fn needs_escape(c: char) -> bool {
    if c.is_control() {
        return true;
    }
    let c = u32::from(c);
    // Everything below U+00AD but the controls is plain Latin-1 text.
    c >= 0x00AD && INVISIBLE.iter().any(|&(lo, hi)| (lo..=hi).contains(&c))
}

/// `text` with every control, format and invisible character written as `\u{XXXX}` (see the
/// module docs); borrowed unchanged when there is none, which is the common case.
pub fn escape(text: &str) -> Cow<'_, str> {
    // Printable ASCII (nearly every name and reason) needs no decoding.
    if text.bytes().all(|b| (0x20..0x7f).contains(&b)) || !text.chars().any(needs_escape) {
        return Cow::Borrowed(text);
    }
    let mut out = String::with_capacity(text.len() + 16);
    for c in text.chars() {
        if needs_escape(c) {
            let _ = write!(out, "\\u{{{:04x}}}", u32::from(c));
        } else {
            out.push(c);
        }
    }
    Cow::Owned(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bidirectional_format_and_control_characters_are_escaped() {
        let cases = [
            ("evil\u{202e}txt.exe", "evil\\u{202e}txt.exe"),
            ("a\u{200b}b", "a\\u{200b}b"),
            (
                "\u{2066}x\u{2067}y\u{2068}z\u{2069}",
                "\\u{2066}x\\u{2067}y\\u{2068}z\\u{2069}",
            ),
            (
                "\u{202a}\u{202b}\u{202c}\u{202d}",
                "\\u{202a}\\u{202b}\\u{202c}\\u{202d}",
            ),
            ("\u{200e}\u{200f}\u{061c}", "\\u{200e}\\u{200f}\\u{061c}"),
            ("bom\u{feff}", "bom\\u{feff}"),
            ("line\u{2028}para\u{2029}", "line\\u{2028}para\\u{2029}"),
            ("tag\u{e0041}", "tag\\u{e0041}"),
            ("soft\u{ad}hyphen", "soft\\u{00ad}hyphen"),
            ("esc\x1b[31m", "esc\\u{001b}[31m"),
            ("nl\nc1\u{85}del\x7f", "nl\\u{000a}c1\\u{0085}del\\u{007f}"),
            ("\u{3164}", "\\u{3164}"),
        ];
        for (raw, shown) in cases {
            assert_eq!(escape(raw), shown, "{raw:?}");
        }
    }

    #[test]
    fn ordinary_text_is_borrowed_unchanged() {
        for text in [
            "web-1234 (alloc_id label)",
            "",
            "café — naïve 日本語 😀",
            "עברית مرحبا",
        ] {
            assert!(
                matches!(escape(text), Cow::Borrowed(t) if t == text),
                "{text:?}"
            );
        }
    }
}
