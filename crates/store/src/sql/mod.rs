//! The one SQL layer both backends share. Every statement is written once (in `verifications`,
//! `messages`, `accounts`), in PostgreSQL's dialect; `dialect` adapts it for SQLite. The typed
//! statements of the core's `ReadTx` and `Tx` are implemented once, on `Repo`, over the two backends' `Db`:
//! a backend only runs text with arguments and hands back rows.
mod accounts;
mod audit;
mod budgets;
pub(crate) mod dialect;
mod messages;
mod oidc;
mod silent;
mod users;
mod verifications;
mod vonage;

use chrono::{DateTime, Utc};
use dialect::Sql;
use phonegate_core::ports::{StoreError, StoreResult};

/// An argument of a statement. Each carries its type even when null: PostgreSQL wants to know it.
#[derive(Clone, Debug, PartialEq)]
pub(crate) enum Value {
    Int(Option<i64>),
    Text(Option<String>),
    Blob(Option<Vec<u8>>),
    Bool(bool),
}

impl From<i64> for Value {
    fn from(v: i64) -> Self {
        Self::Int(Some(v))
    }
}
impl From<Option<i64>> for Value {
    fn from(v: Option<i64>) -> Self {
        Self::Int(v)
    }
}
impl From<u32> for Value {
    fn from(v: u32) -> Self {
        Self::Int(Some(v.into()))
    }
}
impl From<&str> for Value {
    fn from(v: &str) -> Self {
        Self::Text(Some(v.to_string()))
    }
}
impl From<&String> for Value {
    fn from(v: &String) -> Self {
        Self::Text(Some(v.clone()))
    }
}
impl From<Option<&str>> for Value {
    fn from(v: Option<&str>) -> Self {
        Self::Text(v.map(str::to_string))
    }
}
impl From<Option<String>> for Value {
    fn from(v: Option<String>) -> Self {
        Self::Text(v)
    }
}
impl From<&Option<String>> for Value {
    fn from(v: &Option<String>) -> Self {
        Self::Text(v.clone())
    }
}
impl From<&[u8]> for Value {
    fn from(v: &[u8]) -> Self {
        Self::Blob(Some(v.to_vec()))
    }
}
impl From<&Vec<u8>> for Value {
    fn from(v: &Vec<u8>) -> Self {
        Self::Blob(Some(v.clone()))
    }
}
impl From<bool> for Value {
    fn from(v: bool) -> Self {
        Self::Bool(v)
    }
}
/// Both backends store timestamps as milliseconds since the Unix epoch.
impl From<DateTime<Utc>> for Value {
    fn from(v: DateTime<Utc>) -> Self {
        Self::Int(Some(v.timestamp_millis()))
    }
}
impl From<Option<DateTime<Utc>>> for Value {
    fn from(v: Option<DateTime<Utc>>) -> Self {
        Self::Int(v.map(|t| t.timestamp_millis()))
    }
}

/// A statement's arguments: `args![a, b, …]`.
macro_rules! args {
    ($($v:expr),* $(,)?) => { vec![$($crate::sql::Value::from($v)),*] };
}
pub(crate) use args;

/// One column of a result row.
#[derive(Clone, Debug, PartialEq)]
pub(crate) enum Cell {
    Null,
    Int(i64),
    Text(String),
    Blob(Vec<u8>),
    Bool(bool),
}

/// A result row; columns are read by position, in the order the statement selects them.
#[derive(Debug, Default)]
pub(crate) struct Row(pub Vec<Cell>);

fn corrupt(i: usize, want: &str, got: &Cell) -> StoreError {
    StoreError::Other(format!("column {i}: expected {want}, found {got:?}"))
}

impl Row {
    pub fn take_cell(&mut self, i: usize) -> Cell {
        self.take(i)
    }

    fn take(&mut self, i: usize) -> Cell {
        self.0.get_mut(i).map(|c| std::mem::replace(c, Cell::Null)).unwrap_or(Cell::Null)
    }

    pub fn opt_int(&mut self, i: usize) -> StoreResult<Option<i64>> {
        match self.take(i) {
            Cell::Null => Ok(None),
            Cell::Int(v) => Ok(Some(v)),
            other => Err(corrupt(i, "an integer", &other)),
        }
    }

    pub fn int(&mut self, i: usize) -> StoreResult<i64> {
        self.opt_int(i)?.ok_or_else(|| corrupt(i, "an integer", &Cell::Null))
    }

    pub fn opt_text(&mut self, i: usize) -> StoreResult<Option<String>> {
        match self.take(i) {
            Cell::Null => Ok(None),
            Cell::Text(v) => Ok(Some(v)),
            other => Err(corrupt(i, "text", &other)),
        }
    }

    pub fn text(&mut self, i: usize) -> StoreResult<String> {
        self.opt_text(i)?.ok_or_else(|| corrupt(i, "text", &Cell::Null))
    }

    pub fn blob(&mut self, i: usize) -> StoreResult<Vec<u8>> {
        match self.take(i) {
            Cell::Blob(v) => Ok(v),
            other => Err(corrupt(i, "bytes", &other)),
        }
    }

    /// SQLite has no boolean type: it stores 0 and 1.
    pub fn bool(&mut self, i: usize) -> StoreResult<bool> {
        match self.take(i) {
            Cell::Bool(v) => Ok(v),
            Cell::Int(v) => Ok(v != 0),
            other => Err(corrupt(i, "a boolean", &other)),
        }
    }

    pub fn ts(&mut self, i: usize) -> StoreResult<DateTime<Utc>> {
        Ok(ts(self.int(i)?))
    }

    pub fn opt_ts(&mut self, i: usize) -> StoreResult<Option<DateTime<Utc>>> {
        Ok(self.opt_int(i)?.map(ts))
    }
}

fn ts(ms: i64) -> DateTime<Utc> {
    DateTime::from_timestamp_millis(ms).unwrap_or_default()
}

/// What a backend does for the shared layer: run one statement with its arguments, to its end.
pub(crate) trait Db {
    /// Runs a statement; returns the number of rows it changed.
    fn exec(&mut self, sql: &'static Sql, args: Vec<Value>) -> StoreResult<u64>;
    /// Runs a statement and returns its rows.
    fn rows(&mut self, sql: &'static Sql, args: Vec<Value>) -> StoreResult<Vec<Row>>;
}

/// The core's `ReadTx` and `Tx`, implemented once over any backend's `Db`. Which one a unit gets
/// decides what it may run: a read unit sees this only as `ReadTx`.
pub(crate) struct Repo<D>(pub D);

impl<D: Db> Repo<D> {
    fn exec(&mut self, sql: &'static Sql, args: Vec<Value>) -> StoreResult<u64> {
        self.0.exec(sql, args)
    }

    fn rows(&mut self, sql: &'static Sql, args: Vec<Value>) -> StoreResult<Vec<Row>> {
        self.0.rows(sql, args)
    }

    fn row(&mut self, sql: &'static Sql, args: Vec<Value>) -> StoreResult<Option<Row>> {
        Ok(self.rows(sql, args)?.into_iter().next())
    }
}
