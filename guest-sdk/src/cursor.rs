//! Keyset cursors: the key values of a batch's last row, as the text the
//! host stores in the ledger, and back.
//!
//! - One key column: the key itself, an integer as its decimal text (`4711`)
//!   or a text key as it is. This is the format of every earlier version, so
//!   a run they left half done resumes.
//! - Several key columns: a JSON array of the values, integers as JSON
//!   numbers and everything else (text, dates and times as the database
//!   returned them) as JSON strings: `["2026-11-22T10:30:00",17]`. JSON
//!   escapes every character a text key can hold, commas, quotes and newlines
//!   included, and keeps integers and text apart, so each value is bound back
//!   exactly as it was read.

use crate::value::Value;

/// How a single-column key's cursor is read: the one case where the cursor
/// does not carry the value's kind.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyType {
    /// An integer key (`id BIGINT`): the cursor is its decimal text.
    Integer,
    /// A text key (a code, a UUID, a date or time, which arrive as text):
    /// the cursor is the key itself. Text compares by the column's collation,
    /// which differs between databases; prefer integer keys when there is a
    /// choice.
    Text,
}

/// The cursor for key values `values` (one per key column, each an integer or
/// text: the caller has checked).
pub(crate) fn encode(values: &[Value]) -> String {
    match values {
        [Value::Int(i)] => i.to_string(),
        [Value::Text(s)] => s.clone(),
        _ => serde_json::Value::Array(
            values
                .iter()
                .map(|value| match value {
                    Value::Int(i) => serde_json::Value::from(*i),
                    Value::Text(s) => serde_json::Value::from(s.as_str()),
                    other => unreachable!(
                        "key values are checked to be integers or text, not {}",
                        other.kind()
                    ),
                })
                .collect(),
        )
        .to_string(),
    }
}

/// The key values of `cursor` for a key of `columns` columns (`key_type`
/// reads a one-column cursor).
///
/// # Errors
///
/// What is wrong with the cursor, for the caller to wrap with the table and
/// the key: not an integer, not a JSON array, the wrong number of values, or
/// a value that is neither an integer nor a string.
pub(crate) fn decode(
    cursor: &str,
    columns: usize,
    key_type: KeyType,
) -> Result<Vec<Value>, String> {
    if columns == 1 {
        return match key_type {
            KeyType::Text => Ok(vec![Value::Text(cursor.to_owned())]),
            KeyType::Integer => cursor
                .parse()
                .map(|i| vec![Value::Int(i)])
                .map_err(|_| "not an integer key".to_owned()),
        };
    }
    let parsed: serde_json::Value = serde_json::from_str(cursor)
        .map_err(|_| format!("not a JSON array of {columns} key values"))?;
    let serde_json::Value::Array(items) = parsed else {
        return Err(format!("not a JSON array of {columns} key values"));
    };
    if items.len() != columns {
        return Err(format!(
            "{} key values where the key has {columns} columns",
            items.len()
        ));
    }
    items
        .into_iter()
        .map(|item| match item {
            serde_json::Value::String(s) => Ok(Value::Text(s)),
            serde_json::Value::Number(n) => n
                .as_i64()
                .map(Value::Int)
                .ok_or_else(|| format!("{n} is not a 64-bit integer")),
            other => Err(format!("{other} is neither an integer nor a string")),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_column_cursors_keep_the_old_format() {
        assert_eq!(encode(&[Value::Int(-7)]), "-7");
        assert_eq!(encode(&[Value::Text("a,\"b\"\n".into())]), "a,\"b\"\n");
        assert_eq!(
            decode("4711", 1, KeyType::Integer).unwrap(),
            [Value::Int(4711)]
        );
        assert_eq!(
            decode("[1,2]", 1, KeyType::Text).unwrap(),
            [Value::Text("[1,2]".into())]
        );
        assert!(decode("abc", 1, KeyType::Integer).is_err());
    }

    #[test]
    fn composite_cursors_round_trip_every_value_exactly() {
        let values = vec![
            Value::Text("2026-11-22T10:30:00.000001Z".into()),
            Value::Text("comma, \"quote\" 'single'\nnewline\t\\ ✓ \u{0}".into()),
            Value::Int(i64::MIN),
            Value::Int(i64::MAX),
            Value::Text("12".into()),
        ];
        let cursor = encode(&values);
        assert!(!cursor.contains('\n'), "{cursor}");
        assert_eq!(decode(&cursor, 5, KeyType::Integer).unwrap(), values);
        assert_eq!(
            encode(&[Value::Text("2026-01-01".into()), Value::Int(3)]),
            r#"["2026-01-01",3]"#
        );
    }

    #[test]
    fn bad_composite_cursors_say_what_is_wrong() {
        assert_eq!(
            decode("17", 2, KeyType::Integer).unwrap_err(),
            "not a JSON array of 2 key values"
        );
        assert_eq!(
            decode("[1]", 2, KeyType::Integer).unwrap_err(),
            "1 key values where the key has 2 columns"
        );
        assert!(decode("[1.5, 2]", 2, KeyType::Integer).is_err());
        assert!(decode("[null, 2]", 2, KeyType::Integer).is_err());
        assert!(decode("[18446744073709551615, 2]", 2, KeyType::Integer).is_err());
    }
}
