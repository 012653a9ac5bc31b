//! Arguments the operator passed with `dmig-host run --arg key=value`.

use std::str::FromStr;

use crate::__private::dmig::migration::args as host;
use crate::error::{Error, Result};

/// The value of argument `name`, if given.
pub fn get(name: &str) -> Option<String> {
    host::get(name)
}

/// Every argument, in the order given.
pub fn all() -> Vec<(String, String)> {
    host::all()
}

/// Argument `name` parsed as `T`, or `default` if it was not given.
///
/// # Errors
///
/// An error naming the argument and its value when it does not parse.
pub fn parse_or<T: FromStr>(name: &str, default: T) -> Result<T>
where
    T::Err: std::fmt::Display,
{
    match get(name) {
        None => Ok(default),
        Some(value) => value
            .parse()
            .map_err(|e| Error::msg(format!("argument {name}={value} is invalid: {e}"))),
    }
}

/// Argument `name` parsed as `T`; the migration cannot run without it.
///
/// # Errors
///
/// An error naming the argument and how to pass it when it is missing, or
/// its value when it does not parse.
pub fn required<T: FromStr>(name: &str) -> Result<T>
where
    T::Err: std::fmt::Display,
{
    let value = get(name).ok_or_else(|| {
        Error::msg(format!(
            "argument {name} is required (pass it with dmig-host run --arg {name}=VALUE)"
        ))
    })?;
    value
        .parse()
        .map_err(|e| Error::msg(format!("argument {name}={value} is invalid: {e}")))
}

/// Rows per step: `--arg batch_size=N`, or `default`. Every batching
/// migration reads it the same way, so operators tune them all alike.
///
/// # Errors
///
/// An error naming the argument when it does not parse or is 0.
pub fn batch_size(default: u64) -> Result<u64> {
    let size = parse_or("batch_size", default)?;
    if size == 0 {
        return Err(Error::msg("argument batch_size=0 must be at least 1"));
    }
    Ok(size)
}
