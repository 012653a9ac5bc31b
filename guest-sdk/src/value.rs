use crate::error::{Error, Result};

pub(crate) use crate::__private::dmig::migration::types::DbError;
/// The database the host is connected to, for SQL that must differ.
pub use crate::__private::dmig::migration::types::Dialect;
/// One SQL value: a statement parameter or a cell of a result row.
pub use crate::__private::dmig::migration::types::Value;

impl Value {
    /// The kind of value, as named in error messages.
    pub fn kind(&self) -> &'static str {
        match self {
            Value::Null => "NULL",
            Value::Boolean(_) => "a boolean",
            Value::Int(_) => "an integer",
            Value::Float(_) => "a float",
            Value::Text(_) => "text",
            Value::Blob(_) => "a blob",
        }
    }

    /// Whether this is SQL NULL.
    pub fn is_null(&self) -> bool {
        matches!(self, Value::Null)
    }
}

impl PartialEq for Value {
    fn eq(&self, other: &Self) -> bool {
        match (self, other) {
            (Value::Null, Value::Null) => true,
            (Value::Boolean(a), Value::Boolean(b)) => a == b,
            (Value::Int(a), Value::Int(b)) => a == b,
            (Value::Float(a), Value::Float(b)) => a == b,
            (Value::Text(a), Value::Text(b)) => a == b,
            (Value::Blob(a), Value::Blob(b)) => a == b,
            _ => false,
        }
    }
}

macro_rules! value_from {
    ($($ty:ty => |$v:ident| $e:expr),* $(,)?) => {$(
        impl From<$ty> for Value {
            fn from($v: $ty) -> Self { $e }
        }
    )*};
}

value_from! {
    bool => |v| Value::Boolean(v),
    i8 => |v| Value::Int(v.into()),
    i16 => |v| Value::Int(v.into()),
    i32 => |v| Value::Int(v.into()),
    i64 => |v| Value::Int(v),
    u8 => |v| Value::Int(v.into()),
    u16 => |v| Value::Int(v.into()),
    u32 => |v| Value::Int(v.into()),
    f32 => |v| Value::Float(v.into()),
    f64 => |v| Value::Float(v),
    String => |v| Value::Text(v),
    &str => |v| Value::Text(v.to_owned()),
    &String => |v| Value::Text(v.clone()),
    Vec<u8> => |v| Value::Blob(v),
    &[u8] => |v| Value::Blob(v.to_vec()),
    &Value => |v| v.clone(),
}

/// Integers that may not fit in an i64: an `int` when they do, their exact
/// decimal text when they do not (see [`params!`](crate::params)).
macro_rules! value_from_wide {
    ($($ty:ty),*) => {$(
        impl From<$ty> for Value {
            fn from(v: $ty) -> Self {
                i64::try_from(v).map_or_else(|_| Value::Text(v.to_string()), Value::Int)
            }
        }
    )*};
}

value_from_wide!(u64, usize, isize, i128, u128);

impl<T: Into<Value>> From<Option<T>> for Value {
    fn from(value: Option<T>) -> Self {
        value.map_or(Value::Null, Into::into)
    }
}

/// Reads a Rust value out of a [`Value`]; what [`Row::get`](crate::Row::get) uses.
///
/// Conversions are exact: an integer is not silently read as text, and an
/// integer that does not fit the requested width is an error. Read a nullable
/// column as `Option<T>`.
pub trait FromValue: Sized {
    /// The Rust type's name, for error messages.
    const EXPECTED: &'static str;

    /// Converts `value`, or returns `None` when it cannot be represented.
    fn from_value(value: &Value) -> Option<Self>;
}

macro_rules! from_int {
    ($($ty:ty),*) => {$(
        impl FromValue for $ty {
            const EXPECTED: &'static str = stringify!($ty);
            fn from_value(value: &Value) -> Option<Self> {
                match value {
                    Value::Int(v) => <$ty>::try_from(*v).ok(),
                    Value::Boolean(b) => Some(<$ty>::from(*b as u8)),
                    _ => None,
                }
            }
        }
    )*};
}

from_int!(i16, i32, i64, u8, u16, u32, u64);

impl FromValue for bool {
    const EXPECTED: &'static str = "bool";
    fn from_value(value: &Value) -> Option<Self> {
        match value {
            Value::Boolean(b) => Some(*b),
            Value::Int(0) => Some(false),
            Value::Int(1) => Some(true),
            _ => None,
        }
    }
}

impl FromValue for f64 {
    const EXPECTED: &'static str = "f64";
    fn from_value(value: &Value) -> Option<Self> {
        match value {
            Value::Float(v) => Some(*v),
            // Exact only up to 2^53, which is why larger integers are refused.
            Value::Int(v) if v.unsigned_abs() <= 1 << 53 => Some(*v as f64),
            _ => None,
        }
    }
}

impl FromValue for String {
    const EXPECTED: &'static str = "String";
    fn from_value(value: &Value) -> Option<Self> {
        match value {
            Value::Text(s) => Some(s.clone()),
            _ => None,
        }
    }
}

impl FromValue for Vec<u8> {
    const EXPECTED: &'static str = "Vec<u8>";
    fn from_value(value: &Value) -> Option<Self> {
        match value {
            Value::Blob(b) => Some(b.clone()),
            Value::Text(s) => Some(s.as_bytes().to_vec()),
            _ => None,
        }
    }
}

impl FromValue for Value {
    const EXPECTED: &'static str = "Value";
    fn from_value(value: &Value) -> Option<Self> {
        Some(value.clone())
    }
}

impl<T: FromValue> FromValue for Option<T> {
    const EXPECTED: &'static str = T::EXPECTED;
    fn from_value(value: &Value) -> Option<Self> {
        match value {
            Value::Null => Some(None),
            other => T::from_value(other).map(Some),
        }
    }
}

/// Converts `value` from column `column`, naming both on failure.
pub(crate) fn convert<T: FromValue>(column: &str, value: &Value) -> Result<T> {
    T::from_value(value).ok_or_else(|| Error::TypeMismatch {
        column: column.to_owned(),
        expected: T::EXPECTED,
        found: value.kind(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn params_convert_from_rust_values() {
        assert_eq!(
            crate::params![
                1i32,
                2u32,
                true,
                1.5,
                "a",
                String::from("b"),
                vec![1u8],
                None::<i64>,
                Some(3)
            ],
            vec![
                Value::Int(1),
                Value::Int(2),
                Value::Boolean(true),
                Value::Float(1.5),
                Value::Text("a".into()),
                Value::Text("b".into()),
                Value::Blob(vec![1]),
                Value::Null,
                Value::Int(3),
            ]
        );
        assert!(crate::params![].is_empty());
    }

    #[test]
    fn params_take_every_integer_width_without_wrapping() {
        assert_eq!(
            crate::params![1i8, 2i16, 3u16, 4u64, 5usize, -6isize, 7i128, 8u128],
            (1..=8)
                .map(|i| Value::Int(if i == 6 { -6 } else { i }))
                .collect::<Vec<_>>()
        );
        assert_eq!(Value::from(i64::MAX as u64), Value::Int(i64::MAX));
        assert_eq!(
            Value::from(i64::MAX as u64 + 1),
            Value::Text("9223372036854775808".into())
        );
        assert_eq!(
            Value::from(u64::MAX),
            Value::Text("18446744073709551615".into())
        );
        assert_eq!(Value::from(i128::MIN), Value::Text(i128::MIN.to_string()));
        assert_eq!(Value::from(Some(7u64)), Value::Int(7));
    }

    #[test]
    fn conversions_are_exact() {
        assert_eq!(i32::from_value(&Value::Int(i64::from(i32::MAX) + 1)), None);
        assert_eq!(u8::from_value(&Value::Int(-1)), None);
        assert_eq!(bool::from_value(&Value::Int(2)), None);
        assert_eq!(bool::from_value(&Value::Int(1)), Some(true));
        assert_eq!(f64::from_value(&Value::Int(3)), Some(3.0));
        assert_eq!(f64::from_value(&Value::Int(i64::MAX)), None);
        assert_eq!(String::from_value(&Value::Int(3)), None);
        assert_eq!(Option::<i64>::from_value(&Value::Null), Some(None));
    }
}
