//! The values and result sets exchanged with the database, mirroring the WIT
//! `types` interface.

/// One SQL value. See the WIT `value` variant for what each case carries.
#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    Null,
    Boolean(bool),
    Int(i64),
    Float(f64),
    Text(String),
    Blob(Vec<u8>),
}

impl Value {
    /// The text, if this is a text value.
    pub fn as_str(&self) -> Option<&str> {
        match self {
            Value::Text(s) => Some(s),
            _ => None,
        }
    }

    /// Roughly how many bytes the value occupies, for result caps.
    pub fn size(&self) -> usize {
        match self {
            Value::Text(s) => s.len(),
            Value::Blob(b) => b.len(),
            _ => 8,
        }
    }

    /// The integer, if this is an integer value.
    pub fn as_i64(&self) -> Option<i64> {
        match self {
            Value::Int(i) => Some(*i),
            _ => None,
        }
    }
}

/// A calendar date, as the drivers that decode dates from the wire see it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Date {
    /// The year as printed: counted back from 1 BC when `bc` is set.
    pub year: i64,
    pub month: u32,
    pub day: u32,
    pub bc: bool,
}

/// A time of day (or, for MySQL's TIME, a duration up to 838 hours).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub(super) struct Clock {
    pub negative: bool,
    pub hours: u64,
    pub minutes: u32,
    pub seconds: u32,
    pub micros: u32,
}

impl Clock {
    /// `HH:MM:SS`, with the fraction (trailing zeros dropped) only when it is
    /// nonzero, as the databases themselves print times.
    pub(super) fn text(&self) -> String {
        let sign = if self.negative { "-" } else { "" };
        let mut out = format!(
            "{sign}{:02}:{:02}:{:02}",
            self.hours, self.minutes, self.seconds
        );
        if self.micros != 0 {
            let fraction = format!("{:06}", self.micros);
            out.push('.');
            out.push_str(fraction.trim_end_matches('0'));
        }
        out
    }
}

/// ISO 8601 text of a date with an optional time: `2026-11-22`,
/// `2026-11-22T10:30:00`, and with `utc`, `2026-11-22T10:30:00Z`. Years
/// before 1 AD get PostgreSQL's ` BC` suffix, the only form it reads back.
pub(super) fn date_time_text(date: Date, time: Option<Clock>, utc: bool) -> String {
    let era = if date.bc { " BC" } else { "" };
    let mut out = format!("{:04}-{:02}-{:02}", date.year, date.month, date.day);
    if let Some(time) = time {
        out.push('T');
        out.push_str(&time.text());
        if utc {
            out.push('Z');
        }
    }
    out.push_str(era);
    out
}

impl From<&str> for Value {
    fn from(s: &str) -> Self {
        Value::Text(s.to_owned())
    }
}

impl From<String> for Value {
    fn from(s: String) -> Self {
        Value::Text(s)
    }
}

impl From<i64> for Value {
    fn from(i: i64) -> Self {
        Value::Int(i)
    }
}

impl From<u64> for Value {
    /// Saturates at `i64::MAX`, which no real counter reaches.
    fn from(i: u64) -> Self {
        Value::Int(i64::try_from(i).unwrap_or(i64::MAX))
    }
}

impl<T: Into<Value>> From<Option<T>> for Value {
    fn from(v: Option<T>) -> Self {
        v.map_or(Value::Null, Into::into)
    }
}

/// A result set: column names, then rows of values in column order.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Rows {
    pub columns: Vec<String>,
    pub rows: Vec<Vec<Value>>,
}

impl Rows {
    /// The value at (`row`, column named `column`), if both exist.
    pub fn get(&self, row: usize, column: &str) -> Option<&Value> {
        let index = self.columns.iter().position(|c| c == column)?;
        self.rows.get(row).map(|r| &r[index])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn clock_text_shows_fractions_only_when_nonzero() {
        let clock = Clock {
            hours: 10,
            minutes: 30,
            ..Clock::default()
        };
        assert_eq!(clock.text(), "10:30:00");
        assert_eq!(
            Clock {
                micros: 500_000,
                ..clock
            }
            .text(),
            "10:30:00.5"
        );
        assert_eq!(Clock { micros: 1, ..clock }.text(), "10:30:00.000001");
        let long = Clock {
            negative: true,
            hours: 838,
            minutes: 59,
            seconds: 59,
            micros: 0,
        };
        assert_eq!(long.text(), "-838:59:59");
    }

    #[test]
    fn date_time_text_is_iso() {
        let date = Date {
            year: 2026,
            month: 11,
            day: 22,
            bc: false,
        };
        let time = Clock {
            hours: 10,
            minutes: 30,
            micros: 250_000,
            ..Clock::default()
        };
        assert_eq!(date_time_text(date, None, false), "2026-11-22");
        assert_eq!(
            date_time_text(date, Some(time), false),
            "2026-11-22T10:30:00.25"
        );
        assert_eq!(
            date_time_text(date, Some(time), true),
            "2026-11-22T10:30:00.25Z"
        );
        let bc = Date {
            year: 44,
            bc: true,
            ..date
        };
        assert_eq!(date_time_text(bc, None, false), "0044-11-22 BC");
    }
}
