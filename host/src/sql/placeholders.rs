//! Finding the guest's `?` placeholders in PostgreSQL SQL.
//!
//! Guests write `?` on every database so one migration runs anywhere;
//! PostgreSQL numbers its parameters (`$1`, `$2`, ...). A `?` inside a string
//! literal, a quoted identifier, a comment or a dollar-quoted body is text,
//! not a parameter, so this follows PostgreSQL's lexical rules for exactly
//! those constructs and treats every other `?` as a placeholder. (MySQL and
//! SQLite take `?` natively and never come here.)

/// A placeholder in statement text: its byte range and the 0-based index of
/// the parameter it takes.
pub(crate) type Spot = (std::ops::Range<usize>, usize);

/// The `?` placeholders in `sql`, in order.
pub(crate) fn find(sql: &str) -> Vec<Spot> {
    find_offsets(sql)
        .into_iter()
        .enumerate()
        .map(|(index, at)| (at..at + 1, index))
        .collect()
}

/// Byte offsets of the `?` placeholders in `sql`, in order.
fn find_offsets(sql: &str) -> Vec<usize> {
    let bytes = sql.as_bytes();
    let mut found = Vec::new();
    let mut i = 0;
    while i < bytes.len() {
        i = match bytes[i] {
            b'?' => {
                found.push(i);
                i + 1
            }
            b'\'' => {
                let backslash_escapes = is_escape_string_prefix(bytes, i);
                skip_quoted(bytes, i + 1, b'\'', backslash_escapes)
            }
            b'"' => skip_quoted(bytes, i + 1, b'"', false),
            b'-' if bytes.get(i + 1) == Some(&b'-') => skip_line_comment(bytes, i + 2),
            b'/' if bytes.get(i + 1) == Some(&b'*') => skip_block_comment(bytes, i + 2),
            b'$' if i == 0 || !is_identifier_byte(bytes[i - 1]) => skip_dollar_quoted(bytes, i),
            _ => i + 1,
        };
    }
    found
}

/// `sql` with each of `spots` replaced by `render(index)` of its parameter.
pub(crate) fn substitute(sql: &str, spots: &[Spot], render: impl Fn(usize) -> String) -> String {
    let mut out = String::with_capacity(sql.len() + spots.len() * 4);
    let mut rest = 0;
    for (range, index) in spots {
        out.push_str(&sql[rest..range.start]);
        out.push_str(&render(*index));
        rest = range.end;
    }
    out.push_str(&sql[rest..]);
    out
}

/// `sql` with its placeholders numbered `$1`, `$2`, ... in order.
#[cfg(test)]
pub(crate) fn numbered(sql: &str) -> String {
    substitute(sql, &find(sql), |index| format!("${}", index + 1))
}

/// Whether the quote at `quote` opens an `E'...'` string, where backslash
/// escapes apply: an `E` or `e` that starts a token (an `E` ending a longer
/// identifier, as in `SOME'x'`, is not a prefix).
fn is_escape_string_prefix(bytes: &[u8], quote: usize) -> bool {
    quote >= 1
        && matches!(bytes[quote - 1], b'E' | b'e')
        && (quote == 1 || !is_identifier_byte(bytes[quote - 2]))
}

/// Bytes that continue an identifier (PostgreSQL counts every non-ASCII byte
/// as a letter, and `$` as an identifier character after the first).
fn is_identifier_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b == b'_' || b == b'$' || b >= 0x80
}

/// The offset just past the closing `quote` of a literal whose body starts at
/// `i`. A doubled quote is an escaped quote; with `backslash_escapes`, so is a
/// backslash before any byte. Unterminated: the end of the input.
fn skip_quoted(bytes: &[u8], mut i: usize, quote: u8, backslash_escapes: bool) -> usize {
    while i < bytes.len() {
        match bytes[i] {
            b'\\' if backslash_escapes => i += 2,
            b if b == quote => {
                if bytes.get(i + 1) == Some(&quote) {
                    i += 2;
                } else {
                    return i + 1;
                }
            }
            _ => i += 1,
        }
    }
    bytes.len()
}

fn skip_line_comment(bytes: &[u8], i: usize) -> usize {
    bytes[i..]
        .iter()
        .position(|&b| b == b'\n')
        .map_or(bytes.len(), |n| i + n + 1)
}

/// Block comments nest in PostgreSQL (unlike the SQL standard's).
fn skip_block_comment(bytes: &[u8], mut i: usize) -> usize {
    let mut depth = 1;
    while i < bytes.len() {
        if bytes[i..].starts_with(b"/*") {
            depth += 1;
            i += 2;
        } else if bytes[i..].starts_with(b"*/") {
            depth -= 1;
            i += 2;
            if depth == 0 {
                return i;
            }
        } else {
            i += 1;
        }
    }
    bytes.len()
}

/// At a `$` that starts a token: past the whole `$tag$...$tag$` string if it
/// opens one, else just past the `$` (a `$1` parameter, say).
fn skip_dollar_quoted(bytes: &[u8], start: usize) -> usize {
    let tag_start = start + 1;
    let tag_len = bytes[tag_start..]
        .iter()
        .position(|&b| !(b.is_ascii_alphanumeric() || b == b'_' || b >= 0x80))
        .unwrap_or(bytes.len() - tag_start);
    let close = tag_start + tag_len;
    // A tag cannot start with a digit, and must be closed by a `$`.
    if bytes.get(tag_start).is_some_and(u8::is_ascii_digit) || bytes.get(close) != Some(&b'$') {
        return start + 1;
    }
    let delimiter = &bytes[start..=close];
    let body = close + 1;
    bytes[body..]
        .windows(delimiter.len())
        .position(|w| w == delimiter)
        .map_or(bytes.len(), |n| body + n + delimiter.len())
}

#[cfg(test)]
mod tests {
    use super::numbered;

    #[test]
    fn numbers_plain_placeholders() {
        assert_eq!(numbered("SELECT 1"), "SELECT 1");
        assert_eq!(
            numbered("SELECT * FROM t WHERE a = ? AND b IN (?, ?)"),
            "SELECT * FROM t WHERE a = $1 AND b IN ($2, $3)"
        );
        assert_eq!(numbered("?"), "$1");
        assert_eq!(numbered("??"), "$1$2");
        assert_eq!(numbered("a=?,b=?"), "a=$1,b=$2");
    }

    #[test]
    fn leaves_string_literals_alone() {
        assert_eq!(
            numbered("SELECT '?', ? FROM t WHERE x = 'it''s ?'"),
            "SELECT '?', $1 FROM t WHERE x = 'it''s ?'"
        );
        // A standard string: the backslash is a plain character and the
        // quote after it closes the literal.
        assert_eq!(numbered(r"SELECT 'a\', ?"), r"SELECT 'a\', $1");
        assert_eq!(numbered("SELECT '', ?"), "SELECT '', $1");
        assert_eq!(numbered("SELECT '''', ?"), "SELECT '''', $1");
    }

    #[test]
    fn escape_strings_take_backslash_escapes() {
        assert_eq!(numbered(r"SELECT E'\' ?', ?"), r"SELECT E'\' ?', $1");
        assert_eq!(numbered(r"SELECT e'\\', ?"), r"SELECT e'\\', $1");
        assert_eq!(numbered(r"SELECT E'it''s ?', ?"), r"SELECT E'it''s ?', $1");
        // `SOME` ending in E is an identifier, not an escape-string prefix.
        assert_eq!(numbered(r"SELECT SOME'\', ?"), r"SELECT SOME'\', $1");
    }

    #[test]
    fn leaves_quoted_identifiers_alone() {
        assert_eq!(
            numbered(r#"SELECT "what?", "a""?" FROM t WHERE x = ?"#),
            r#"SELECT "what?", "a""?" FROM t WHERE x = $1"#
        );
    }

    #[test]
    fn leaves_comments_alone() {
        assert_eq!(
            numbered("SELECT ? -- really?\n, ?"),
            "SELECT $1 -- really?\n, $2"
        );
        assert_eq!(
            numbered("SELECT ? -- to the end?"),
            "SELECT $1 -- to the end?"
        );
        assert_eq!(numbered("SELECT /* ? */ ?"), "SELECT /* ? */ $1");
        assert_eq!(
            numbered("SELECT /* a /* nested ? */ still ? */ ?"),
            "SELECT /* a /* nested ? */ still ? */ $1"
        );
        assert_eq!(numbered("SELECT /* open ?"), "SELECT /* open ?");
        // A lone dash or slash is an operator.
        assert_eq!(numbered("SELECT 1 - ? / ?"), "SELECT 1 - $1 / $2");
    }

    #[test]
    fn leaves_dollar_quoted_strings_alone() {
        assert_eq!(numbered("SELECT $$ ? $$, ?"), "SELECT $$ ? $$, $1");
        assert_eq!(
            numbered("SELECT $fn$ a $$ ? $$ b $fn$, ?"),
            "SELECT $fn$ a $$ ? $$ b $fn$, $1"
        );
        assert_eq!(
            numbered("SELECT $a$ ? $b$ ? $a$, ?"),
            "SELECT $a$ ? $b$ ? $a$, $1"
        );
        assert_eq!(
            numbered("SELECT $$ unterminated ?"),
            "SELECT $$ unterminated ?"
        );
    }

    #[test]
    fn dollars_that_do_not_open_a_string() {
        // A positional parameter, and a `$` inside an identifier.
        assert_eq!(numbered("SELECT $1, ?"), "SELECT $1, $1");
        assert_eq!(
            numbered("SELECT a$b$ FROM t WHERE x = ?"),
            "SELECT a$b$ FROM t WHERE x = $1"
        );
        assert_eq!(numbered("SELECT $ ?"), "SELECT $ $1");
    }

    #[test]
    fn handles_unicode_around_placeholders() {
        assert_eq!(
            numbered("SELECT 'héllo ?', ? AS \"ünï?\", ?"),
            "SELECT 'héllo ?', $1 AS \"ünï?\", $2"
        );
    }

    #[test]
    fn every_other_question_mark_is_a_placeholder() {
        // The jsonb `?` operator cannot be told apart from a placeholder: it
        // is one (guests use jsonb_exists() instead).
        assert_eq!(
            numbered("SELECT doc ? 'k' FROM t"),
            "SELECT doc $1 'k' FROM t"
        );
        assert_eq!(
            numbered("SELECT x::text, ?::int"),
            "SELECT x::text, $1::int"
        );
    }
}
