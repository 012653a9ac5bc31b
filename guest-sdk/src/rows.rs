use crate::error::{Error, Result};
use crate::value::{FromValue, Value, convert};

/// The rows a query returned, with their column names.
#[derive(Debug, Clone, Default)]
pub struct Rows {
    columns: Vec<String>,
    rows: Vec<Vec<Value>>,
}

impl Rows {
    pub(crate) fn new(columns: Vec<String>, rows: Vec<Vec<Value>>) -> Self {
        Rows { columns, rows }
    }

    /// The column names, in order.
    pub fn columns(&self) -> &[String] {
        &self.columns
    }

    /// How many rows there are.
    pub fn len(&self) -> usize {
        self.rows.len()
    }

    /// Whether the query returned no rows.
    pub fn is_empty(&self) -> bool {
        self.rows.is_empty()
    }

    /// The row at `index`, if there is one.
    pub fn get(&self, index: usize) -> Option<Row<'_>> {
        self.rows.get(index).map(|values| self.row(values))
    }

    /// Keeps the first `len` rows.
    pub(crate) fn truncate(&mut self, len: usize) {
        self.rows.truncate(len);
    }

    /// The last row: in a keyset batch, the one whose key is the next cursor.
    pub fn last(&self) -> Option<Row<'_>> {
        self.rows.last().map(|values| self.row(values))
    }

    /// Iterates over the rows in order.
    pub fn iter(&self) -> impl ExactSizeIterator<Item = Row<'_>> + '_ {
        self.rows.iter().map(|values| self.row(values))
    }

    fn row<'a>(&'a self, values: &'a [Value]) -> Row<'a> {
        Row {
            columns: &self.columns,
            values,
        }
    }
}

impl<'a> IntoIterator for &'a Rows {
    type Item = Row<'a>;
    type IntoIter = Box<dyn ExactSizeIterator<Item = Row<'a>> + 'a>;
    fn into_iter(self) -> Self::IntoIter {
        Box::new(self.iter())
    }
}

/// One row of a result: read its values by column name or index.
#[derive(Debug, Clone, Copy)]
pub struct Row<'a> {
    columns: &'a [String],
    values: &'a [Value],
}

impl<'a> Row<'a> {
    /// Reads the value of `column` (a name or a zero-based index) as `T`.
    ///
    /// # Errors
    ///
    /// [`Error::MissingColumn`] if there is no such column, and
    /// [`Error::TypeMismatch`] if the value cannot be read as `T` (for
    /// example NULL read as `i64`: read nullable columns as `Option<i64>`).
    pub fn get<T: FromValue>(&self, column: impl ColumnIndex) -> Result<T> {
        let index = column
            .index(self.columns)
            .ok_or_else(|| Error::MissingColumn {
                column: column.describe(),
                available: self.columns.to_vec(),
            })?;
        convert(&self.columns[index], &self.values[index])
    }

    /// Reads `column` as text and parses it as `T` (a date, a decimal, an
    /// enum of the migration's own): for values that arrive as text.
    ///
    /// # Errors
    ///
    /// As [`Row::get`] for `String`, and an error naming the column and the
    /// value when it does not parse.
    pub fn parse<T: std::str::FromStr>(&self, column: impl ColumnIndex) -> Result<T>
    where
        T::Err: std::fmt::Display,
    {
        let text: String = self.get(column)?;
        text.parse().map_err(|e| {
            Error::msg(format!(
                "column {} holds {text:?}, which does not parse: {e}",
                column.describe()
            ))
        })
    }

    /// The names of the row's columns, in order.
    pub fn columns(&self) -> &'a [String] {
        self.columns
    }

    /// The raw value of `column`, if the row has it.
    pub fn value(&self, column: impl ColumnIndex) -> Option<&'a Value> {
        column.index(self.columns).map(|i| &self.values[i])
    }

    /// All values of the row, in column order.
    pub fn values(&self) -> &'a [Value] {
        self.values
    }
}

/// Something that picks a column: its name (`&str`) or its index (`usize`).
pub trait ColumnIndex: Copy {
    /// The column's position among `columns`, if it exists.
    fn index(self, columns: &[String]) -> Option<usize>;
    /// How to name it in an error.
    fn describe(self) -> String;
}

impl ColumnIndex for &str {
    fn index(self, columns: &[String]) -> Option<usize> {
        columns
            .iter()
            .position(|c| c == self)
            .or_else(|| columns.iter().position(|c| c.eq_ignore_ascii_case(self)))
    }
    fn describe(self) -> String {
        format!("\"{self}\"")
    }
}

impl ColumnIndex for usize {
    fn index(self, columns: &[String]) -> Option<usize> {
        (self < columns.len()).then_some(self)
    }
    fn describe(self) -> String {
        format!("#{self}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> Rows {
        Rows::new(
            vec!["id".into(), "name".into(), "note".into()],
            vec![
                vec![Value::Int(1), Value::Text("ada".into()), Value::Null],
                vec![
                    Value::Int(2),
                    Value::Text("grace".into()),
                    Value::Text("x".into()),
                ],
            ],
        )
    }

    #[test]
    fn reads_by_name_and_index() {
        let rows = sample();
        assert_eq!(rows.len(), 2);
        let first = rows.get(0).unwrap();
        assert_eq!(first.get::<i64>("id").unwrap(), 1);
        assert_eq!(first.get::<String>(1).unwrap(), "ada");
        assert_eq!(first.get::<Option<String>>("note").unwrap(), None);
        assert_eq!(
            rows.last()
                .unwrap()
                .get::<Option<String>>("note")
                .unwrap()
                .as_deref(),
            Some("x")
        );
        let ids: Vec<i64> = rows.iter().map(|r| r.get("id").unwrap()).collect();
        assert_eq!(ids, [1, 2]);
    }

    #[test]
    fn errors_name_the_column_and_the_types() {
        let rows = sample();
        let row = rows.get(0).unwrap();
        assert_eq!(
            row.get::<i64>("name").unwrap_err(),
            Error::TypeMismatch {
                column: "name".into(),
                expected: "i64",
                found: "text"
            }
        );
        assert_eq!(
            row.get::<i64>("missing").unwrap_err().to_string(),
            "no column \"missing\" in the result (columns: id, name, note)"
        );
        assert_eq!(
            row.get::<i64>(3).unwrap_err().to_string(),
            "no column #3 in the result (columns: id, name, note)"
        );
        assert_eq!(
            row.parse::<u32>("name").unwrap_err().to_string(),
            "column \"name\" holds \"ada\", which does not parse: invalid digit found in string"
        );
        assert_eq!(row.parse::<String>(1).unwrap(), "ada");
        assert_eq!(
            row.get::<String>("note").unwrap_err().to_string(),
            "column note holds NULL, which cannot be read as String"
        );
    }
}
