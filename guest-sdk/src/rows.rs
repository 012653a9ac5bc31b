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
