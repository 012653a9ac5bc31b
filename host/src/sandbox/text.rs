//! Text a guest hands the host (error messages, log lines, printed output),
//! made safe to print on one line of an operator's terminal and to store in
//! the ledger.
//!
//! Nothing a guest returns is trusted. [`one_line`] escapes every character
//! that could end a line, move the cursor or change how a terminal or an
//! editor shows what follows:
//!
//! * the C0 and C1 control characters and DEL (`\n`, `\r`, `\t`, ESC, NUL,
//!   …): `\n`, `\r` and `\t` become those two-character escapes, the others
//!   `\u{1b}` and so on
//! * the Unicode line and paragraph separators U+2028 and U+2029
//! * the bidirectional formatting characters (U+061C, U+200E, U+200F,
//!   U+202A–U+202E, U+2066–U+2069), which reorder what a terminal shows
//!
//! and bounds the result to a byte cap, ending a cut text with the marker
//! `… [truncated N bytes]` (N counts the bytes of the original text left
//! out). The cap counts the marker, so the result never exceeds it.

/// The marker that ends a truncated text, before its byte count.
pub const TRUNCATED: &str = "… [truncated ";

/// Whether `c` must be escaped to keep a text on one visible line.
pub fn is_unsafe(c: char) -> bool {
    c.is_control()
        || matches!(
            c,
            '\u{2028}'
                | '\u{2029}'
                | '\u{061c}'
                | '\u{200e}'
                | '\u{200f}'
                | '\u{202a}'..='\u{202e}'
                | '\u{2066}'..='\u{2069}'
        )
}

/// How a cursor (guest text, stored whole) is shown to the operator: on
/// one line, at most 1 KiB.
pub fn shown_cursor(cursor: &str) -> String {
    one_line(cursor, 1024)
}

/// `text` with every unsafe character escaped (see the module's
/// documentation), at most `max_bytes` bytes long (marker included; at
/// least 64 bytes are always allowed, room for the marker).
pub fn one_line(text: &str, max_bytes: usize) -> String {
    let max_bytes = max_bytes.max(64);
    if text.len() <= max_bytes && !text.chars().any(is_unsafe) {
        return text.to_owned();
    }
    let mut out = String::with_capacity(text.len().min(max_bytes));
    let mut piece = String::new();
    for (at, c) in text.char_indices() {
        piece.clear();
        if is_unsafe(c) {
            piece.extend(c.escape_default());
        } else {
            piece.push(c);
        }
        // Keep `c` only if a marker for whatever follows it still fits.
        let after = at + c.len_utf8();
        let tail = if after < text.len() {
            marker_len(text.len() - after)
        } else {
            0
        };
        if out.len() + piece.len() + tail > max_bytes {
            // The previous character left room for this marker.
            out.push_str(&format!("{TRUNCATED}{} bytes]", text.len() - at));
            return out;
        }
        out.push_str(&piece);
    }
    out
}

/// The length of the marker for `dropped` bytes.
fn marker_len(dropped: usize) -> usize {
    TRUNCATED.len() + dropped.to_string().len() + " bytes]".len()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escapes_what_could_forge_a_line() {
        assert_eq!(one_line("plain é text", 100), "plain é text");
        assert_eq!(
            one_line("a\nerror: forged\r\u{1b}[2K\0\u{7f}\u{9b}", 100),
            "a\\nerror: forged\\r\\u{1b}[2K\\u{0}\\u{7f}\\u{9b}"
        );
        assert_eq!(
            one_line("x\u{2028}y\u{2029}z\u{202e}w\u{2066}\t", 100),
            "x\\u{2028}y\\u{2029}z\\u{202e}w\\u{2066}\\t"
        );
    }

    #[test]
    fn bounds_with_a_marker_that_counts_the_rest() {
        let long = "é".repeat(1000); // 2000 bytes
        let cut = one_line(&long, 100);
        assert!(cut.len() <= 100, "{}", cut.len());
        let kept = cut.split(TRUNCATED).next().unwrap();
        let dropped: usize = cut
            .rsplit(TRUNCATED)
            .next()
            .unwrap()
            .trim_end_matches(" bytes]")
            .parse()
            .unwrap();
        assert_eq!(kept.len() + dropped, 2000);
        // Exactly at the cap: kept whole, no marker.
        assert_eq!(one_line(&"x".repeat(100), 100), "x".repeat(100));
        let over = one_line(&"x".repeat(101), 100);
        assert!(over.len() <= 100 && over.ends_with(" bytes]"), "{over}");
        // Escapes count toward the cap too.
        assert!(one_line(&"\n".repeat(1000), 100).len() <= 100);
    }
}
