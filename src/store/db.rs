//! The one place that knows which database the store talks to: SQLite (embedded, rusqlite)
//! or PostgreSQL (the `postgres` client). The store's SQL is written once, in the subset
//! both understand, with SQLite's `?N` placeholders; [`translate`] turns it into
//! PostgreSQL's spelling. Parameters go to PostgreSQL as text so the server types them from
//! where they stand, as SQLite does; the few places where a placeholder stands alone
//! (`?5 IS NULL`) cast it (`CAST(?5 AS TEXT)`), which both read the same way. A list
//! ([`Value::List`], for PostgreSQL-only statements such as the one-statement page import)
//! goes in binary as the array its placeholder is cast to.
//!
//! The surface mirrors the part of rusqlite the store uses (prepare, execute, query_row,
//! query_map, transactions) so the store's code does not say which backend it runs on.
//! Writers serialise as they do on SQLite: a write transaction (`BEGIN IMMEDIATE` there)
//! takes one advisory lock on PostgreSQL, so what the store checks inside a transaction
//! still holds when it commits, on any number of hosts.

use std::borrow::Cow;
use std::cell::RefCell;
use std::collections::HashMap;
use std::fmt;

pub type Result<T, E = Error> = std::result::Result<T, E>;

/// A database error, with the server's own message.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("{0}")]
    Sqlite(#[from] rusqlite::Error),
    #[error("{}", postgres_message(.0))]
    Postgres(#[from] postgres::Error),
    #[error("query returned no rows")]
    NoRows,
    #[error("column {index}: {message}")]
    Type { index: usize, message: String },
    #[error("the connection to the store was lost and could not be opened again: {0}")]
    Reconnect(String),
}

/// PostgreSQL's error with its detail: `postgres::Error`'s own Display says only "db error".
fn postgres_message(e: &postgres::Error) -> String {
    match e.as_db_error() {
        Some(db) => match db.detail() {
            Some(detail) => format!("{}: {} ({detail})", db.severity(), db.message()),
            None => format!("{}: {}", db.severity(), db.message()),
        },
        None => {
            let mut text = e.to_string();
            let mut source = std::error::Error::source(e);
            while let Some(s) = source {
                text.push_str(&format!(": {s}"));
                source = s.source();
            }
            text
        }
    }
}

impl Error {
    /// Another connection holds the write lock (SQLite) past the busy timeout.
    pub fn is_busy(&self) -> bool {
        match self {
            Error::Sqlite(e) => matches!(
                e.sqlite_error_code(),
                Some(rusqlite::ErrorCode::DatabaseBusy | rusqlite::ErrorCode::DatabaseLocked)
            ),
            _ => false,
        }
    }
}

/// Which database: decides the few statements that differ (schema bookkeeping, locks).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

/// A value bound to a placeholder.
#[derive(Debug, Clone, PartialEq)]
pub enum Value<'a> {
    Null,
    Int(i64),
    Real(f64),
    Text(Cow<'a, str>),
    /// Values for one `CAST(?N AS TEXT[])` or `CAST(?N AS BIGINT[])`, on PostgreSQL only
    /// (SQLite has no arrays): text or NULL, integers or NULL. Sent in binary, so the server
    /// copies the elements instead of parsing an array literal.
    List(Vec<Value<'a>>),
    /// A [`Value::List`] by reference: what [`Param::value`] gives for one, so a page's lists
    /// are not copied again for each execution.
    ListOf(&'a [Value<'a>]),
}

/// What can be bound to a placeholder.
pub trait Param {
    fn value(&self) -> Value<'_>;
}

impl Param for Value<'_> {
    fn value(&self) -> Value<'_> {
        match self {
            Value::Text(t) => Value::Text(Cow::Borrowed(t)),
            Value::List(items) => Value::ListOf(items),
            Value::ListOf(items) => Value::ListOf(items),
            other => other.clone(),
        }
    }
}
macro_rules! int_param {
    ($($t:ty),*) => {$(
        impl Param for $t {
            fn value(&self) -> Value<'_> {
                Value::Int(*self as i64)
            }
        }
        impl From<$t> for Value<'static> {
            fn from(v: $t) -> Self {
                Value::Int(v as i64)
            }
        }
    )*};
}
int_param!(i64, i32, u32, u16, u8, usize);
impl Param for u64 {
    /// Saturates: no count the store keeps comes near i64::MAX, and SQLite could not hold it.
    fn value(&self) -> Value<'_> {
        Value::Int(i64::try_from(*self).unwrap_or(i64::MAX))
    }
}
impl Param for bool {
    fn value(&self) -> Value<'_> {
        Value::Int(i64::from(*self))
    }
}
impl Param for f64 {
    fn value(&self) -> Value<'_> {
        Value::Real(*self)
    }
}
impl Param for str {
    fn value(&self) -> Value<'_> {
        Value::Text(Cow::Borrowed(self))
    }
}
impl Param for String {
    fn value(&self) -> Value<'_> {
        Value::Text(Cow::Borrowed(self))
    }
}
impl<T: Param + ?Sized> Param for &T {
    fn value(&self) -> Value<'_> {
        (**self).value()
    }
}
impl<T: Param> Param for Option<T> {
    fn value(&self) -> Value<'_> {
        match self {
            Some(v) => v.value(),
            None => Value::Null,
        }
    }
}
impl From<String> for Value<'static> {
    fn from(v: String) -> Self {
        Value::Text(Cow::Owned(v))
    }
}
impl From<&str> for Value<'static> {
    fn from(v: &str) -> Self {
        Value::Text(Cow::Owned(v.to_owned()))
    }
}
impl<T: Into<Value<'static>>> From<Option<T>> for Value<'static> {
    fn from(v: Option<T>) -> Self {
        v.map_or(Value::Null, Into::into)
    }
}

/// The parameters of a statement, as rusqlite's `params!` spells them.
macro_rules! params {
    () => { &[] as &[&dyn $crate::store::db::Param] };
    ($($p:expr),+ $(,)?) => { &[$(&$p as &dyn $crate::store::db::Param),+] as &[&dyn $crate::store::db::Param] };
}
pub(crate) use params;

/// Parameters from a list built at run time.
pub fn params_from_iter<'a, T: Param + 'a>(
    values: impl IntoIterator<Item = &'a T>,
) -> Vec<&'a dyn Param> {
    values.into_iter().map(|v| v as &dyn Param).collect()
}

/// What a statement's parameters can be given as: `params![…]`, `[]`, or a list built at
/// run time ([`params_from_iter`]).
pub trait Params {
    fn list(&self) -> &[&dyn Param];
}
impl Params for &[&dyn Param] {
    fn list(&self) -> &[&dyn Param] {
        self
    }
}
impl Params for [&dyn Param; 0] {
    fn list(&self) -> &[&dyn Param] {
        &[]
    }
}
impl Params for Vec<&dyn Param> {
    fn list(&self) -> &[&dyn Param] {
        self
    }
}

impl rusqlite::ToSql for Value<'_> {
    fn to_sql(&self) -> rusqlite::Result<rusqlite::types::ToSqlOutput<'_>> {
        use rusqlite::types::{ToSqlOutput, ValueRef};
        Ok(ToSqlOutput::Borrowed(match self {
            Value::Null => ValueRef::Null,
            Value::Int(i) => ValueRef::Integer(*i),
            Value::Real(f) => ValueRef::Real(*f),
            Value::Text(t) => ValueRef::Text(t.as_bytes()),
            Value::List(_) | Value::ListOf(_) => {
                return Err(rusqlite::Error::ToSqlConversionFailure(
                    "a list is bound on PostgreSQL only".into(),
                ))
            }
        }))
    }
}

impl postgres::types::ToSql for Value<'_> {
    /// Text format, so the server parses the value as the type it inferred for the placeholder
    /// (an integer into BIGINT, 1/0 into a boolean condition), as SQLite's affinity does. A
    /// list goes in binary, as the TEXT[] or BIGINT[] its placeholder is cast to.
    fn to_sql(
        &self,
        ty: &postgres::types::Type,
        out: &mut bytes::BytesMut,
    ) -> Result<postgres::types::IsNull, Box<dyn std::error::Error + Sync + Send>> {
        use bytes::BufMut;
        match self {
            Value::List(items) => return list_to_sql(items, ty, out),
            Value::ListOf(items) => return list_to_sql(items, ty, out),
            Value::Null => return Ok(postgres::types::IsNull::Yes),
            Value::Int(i) => out.put_slice(i.to_string().as_bytes()),
            Value::Real(f) => out.put_slice(f.to_string().as_bytes()),
            Value::Text(t) => {
                if t.contains('\0') {
                    return Err("text with a NUL character cannot be stored in PostgreSQL".into());
                }
                out.put_slice(t.as_bytes())
            }
        }
        Ok(postgres::types::IsNull::No)
    }
    fn accepts(_ty: &postgres::types::Type) -> bool {
        true
    }
    fn encode_format(&self, _ty: &postgres::types::Type) -> postgres::types::Format {
        match self {
            Value::List(_) | Value::ListOf(_) => postgres::types::Format::Binary,
            _ => postgres::types::Format::Text,
        }
    }
    postgres::types::to_sql_checked!();
}

/// A list in binary, as the TEXT[] or BIGINT[] its placeholder is cast to.
fn list_to_sql(
    items: &[Value<'_>],
    ty: &postgres::types::Type,
    out: &mut bytes::BytesMut,
) -> Result<postgres::types::IsNull, Box<dyn std::error::Error + Sync + Send>> {
    use postgres::types::{Kind, ToSql, Type};
    let wrong = || format!("a list bound to {ty}: cast its placeholder to TEXT[] or BIGINT[]");
    let Kind::Array(member) = ty.kind() else {
        return Err(wrong().into());
    };
    if *member == Type::INT8 {
        let ints = items
            .iter()
            .map(|v| match v {
                Value::Int(i) => Ok(Some(*i)),
                Value::Null => Ok(None),
                _ => Err("a BIGINT[] list holds only integers and NULLs"),
            })
            .collect::<Result<Vec<Option<i64>>, _>>()?;
        return ints.to_sql(ty, out);
    }
    if *member == Type::TEXT {
        let texts = items
            .iter()
            .map(|v| match v {
                Value::Text(t) if t.contains('\0') => {
                    Err("text with a NUL character cannot be stored in PostgreSQL")
                }
                Value::Text(t) => Ok(Some(t.as_ref())),
                Value::Null => Ok(None),
                _ => Err("a TEXT[] list holds only text and NULLs"),
            })
            .collect::<Result<Vec<Option<&str>>, _>>()?;
        return texts.to_sql(ty, out);
    }
    Err(wrong().into())
}

/// One value read from a row.
#[derive(Debug, Clone, Copy)]
pub enum Cell<'a> {
    Null,
    Int(i64),
    Real(f64),
    Text(&'a str),
    Blob(&'a [u8]),
}

/// What a column can be read as.
pub trait FromCell: Sized {
    fn from_cell(cell: Cell<'_>) -> Result<Self, String>;
}

fn wrong(cell: Cell<'_>, wanted: &str) -> String {
    let found = match cell {
        Cell::Null => "NULL",
        Cell::Int(_) => "an integer",
        Cell::Real(_) => "a real",
        Cell::Text(_) => "text",
        Cell::Blob(_) => "a blob",
    };
    format!("expected {wanted}, found {found}")
}

impl FromCell for i64 {
    fn from_cell(cell: Cell<'_>) -> Result<Self, String> {
        match cell {
            Cell::Int(i) => Ok(i),
            other => Err(wrong(other, "an integer")),
        }
    }
}
macro_rules! int_from_cell {
    ($($t:ty),*) => {$(
        impl FromCell for $t {
            fn from_cell(cell: Cell<'_>) -> Result<Self, String> {
                let i = i64::from_cell(cell)?;
                <$t>::try_from(i).map_err(|_| format!("{i} is out of range for {}", stringify!($t)))
            }
        }
    )*};
}
int_from_cell!(i32, u32, u64, u16, u8, usize);
impl FromCell for bool {
    fn from_cell(cell: Cell<'_>) -> Result<Self, String> {
        Ok(i64::from_cell(cell)? != 0)
    }
}
impl FromCell for f64 {
    fn from_cell(cell: Cell<'_>) -> Result<Self, String> {
        match cell {
            Cell::Real(f) => Ok(f),
            Cell::Int(i) => Ok(i as f64),
            other => Err(wrong(other, "a real")),
        }
    }
}
impl FromCell for String {
    fn from_cell(cell: Cell<'_>) -> Result<Self, String> {
        match cell {
            Cell::Text(t) => Ok(t.to_owned()),
            other => Err(wrong(other, "text")),
        }
    }
}
impl FromCell for Vec<u8> {
    fn from_cell(cell: Cell<'_>) -> Result<Self, String> {
        match cell {
            Cell::Blob(b) => Ok(b.to_vec()),
            Cell::Text(t) => Ok(t.as_bytes().to_vec()),
            other => Err(wrong(other, "a blob")),
        }
    }
}
/// Any value as it is, for code that moves rows without knowing their columns (`store copy`).
/// A blob has no [`Value`]: the store writes none.
impl FromCell for Value<'static> {
    fn from_cell(cell: Cell<'_>) -> Result<Self, String> {
        Ok(match cell {
            Cell::Null => Value::Null,
            Cell::Int(i) => Value::Int(i),
            Cell::Real(f) => Value::Real(f),
            Cell::Text(t) => Value::Text(Cow::Owned(t.to_owned())),
            other @ Cell::Blob(_) => return Err(wrong(other, "a number or text")),
        })
    }
}
impl<T: FromCell> FromCell for Option<T> {
    fn from_cell(cell: Cell<'_>) -> Result<Self, String> {
        match cell {
            Cell::Null => Ok(None),
            other => T::from_cell(other).map(Some),
        }
    }
}

/// A row being read.
pub enum Row<'a> {
    Sqlite(&'a rusqlite::Row<'a>),
    Postgres(&'a postgres::Row),
}

impl Row<'_> {
    pub fn get<T: FromCell>(&self, index: usize) -> Result<T> {
        let type_err = |message| Error::Type { index, message };
        match self {
            Row::Sqlite(r) => {
                use rusqlite::types::ValueRef;
                let cell = match r.get_ref(index)? {
                    ValueRef::Null => Cell::Null,
                    ValueRef::Integer(i) => Cell::Int(i),
                    ValueRef::Real(f) => Cell::Real(f),
                    ValueRef::Text(t) => {
                        Cell::Text(std::str::from_utf8(t).map_err(|e| type_err(e.to_string()))?)
                    }
                    ValueRef::Blob(b) => Cell::Blob(b),
                };
                T::from_cell(cell).map_err(type_err)
            }
            Row::Postgres(r) => {
                use postgres::types::Type;
                let Some(column) = r.columns().get(index) else {
                    return Err(type_err(format!("no column {index}")));
                };
                let ty = column.type_().clone();
                let cell = if ty == Type::INT8 {
                    r.try_get::<_, Option<i64>>(index)?.map(Cell::Int)
                } else if ty == Type::INT4 {
                    r.try_get::<_, Option<i32>>(index)?
                        .map(|i| Cell::Int(i.into()))
                } else if ty == Type::INT2 {
                    r.try_get::<_, Option<i16>>(index)?
                        .map(|i| Cell::Int(i.into()))
                } else if ty == Type::BOOL {
                    r.try_get::<_, Option<bool>>(index)?
                        .map(|b| Cell::Int(b.into()))
                } else if ty == Type::FLOAT8 {
                    r.try_get::<_, Option<f64>>(index)?.map(Cell::Real)
                } else if ty == Type::FLOAT4 {
                    r.try_get::<_, Option<f32>>(index)?
                        .map(|f| Cell::Real(f.into()))
                } else if ty == Type::BYTEA {
                    r.try_get::<_, Option<&[u8]>>(index)?.map(Cell::Blob)
                } else if ty == Type::TEXT
                    || ty == Type::VARCHAR
                    || ty == Type::BPCHAR
                    || ty == Type::NAME
                    || ty == Type::UNKNOWN
                {
                    r.try_get::<_, Option<&str>>(index)?.map(Cell::Text)
                } else {
                    return Err(type_err(format!(
                        "PostgreSQL type {ty} is not read by scansync (cast it to BIGINT or TEXT)"
                    )));
                };
                T::from_cell(cell.unwrap_or(Cell::Null)).map_err(type_err)
            }
        }
    }
}

/// `.optional()` on a single-row read, as rusqlite's `OptionalExtension`.
pub trait OptionalExtension<T> {
    fn optional(self) -> Result<Option<T>>;
}

impl<T> OptionalExtension<T> for Result<T> {
    fn optional(self) -> Result<Option<T>> {
        match self {
            Ok(v) => Ok(Some(v)),
            Err(Error::NoRows) => Ok(None),
            Err(Error::Sqlite(rusqlite::Error::QueryReturnedNoRows)) => Ok(None),
            Err(e) => Err(e),
        }
    }
}

/// A PostgreSQL session and its prepared statements (by the store's SQL text).
pub struct PgSession {
    /// Always `Some` but while dropping (see `Drop`).
    client: Option<postgres::Client>,
    statements: HashMap<String, postgres::Statement>,
    /// Whether a [`Tx`] is open: [`Db::for_each_row`]'s cursor then lives in it instead of
    /// a transaction of its own.
    in_transaction: bool,
    /// Numbers cursors, so one opened while another is read gets a name of its own.
    cursors: u64,
    /// Opens the connection again once the server closed it (a restart, a failover, a
    /// dropped network): a long-running daemon would otherwise fail every call from then on.
    reconnect: Option<Reconnect>,
    /// A call failed in a way that ends the session (see [`session_lost`]) before the client
    /// noticed the connection closed.
    broken: bool,
}

/// Whether `e` means the session is over: the server ended it (a FATAL error such as an
/// administrator's termination or a shutdown) or the connection itself failed.
fn session_lost(e: &postgres::Error) -> bool {
    let fatal = e
        .as_db_error()
        .is_some_and(|d| matches!(d.severity(), "FATAL" | "PANIC"));
    let io = std::error::Error::source(e).is_some_and(|s| s.is::<std::io::Error>());
    e.is_closed() || fatal || io
}

/// Makes a new connection like the first (the error in words, naming no secret).
pub type Reconnect = Box<dyn Fn() -> std::result::Result<postgres::Client, String> + Send>;

/// Runs a call of the synchronous PostgreSQL client, which drives its own small runtime and
/// so must not block a thread that drives the daemon's async tasks. The store is used from
/// blocking threads (where this just calls `f`); a call from an async worker gives up the
/// worker for its duration instead of panicking.
pub fn off_runtime<T: Send>(f: impl FnOnce() -> T + Send) -> T {
    use tokio::runtime::{Handle, RuntimeFlavor};
    match Handle::try_current() {
        Err(_) => f(),
        Ok(h) if h.runtime_flavor() == RuntimeFlavor::MultiThread => tokio::task::block_in_place(f),
        Ok(_) => std::thread::scope(|s| {
            s.spawn(f)
                .join()
                .unwrap_or_else(|panic| std::panic::resume_unwind(panic))
        }),
    }
}

impl PgSession {
    /// Runs `f` on the client, off the async runtime (see [`off_runtime`]).
    fn call<T: Send>(
        &mut self,
        f: impl FnOnce(&mut postgres::Client) -> Result<T, postgres::Error> + Send,
    ) -> Result<T> {
        self.reconnect_if_closed()?;
        let client = self.client.as_mut().expect("client is there until dropped");
        off_runtime(|| f(client)).map_err(|e| {
            self.broken |= session_lost(&e);
            e.into()
        })
    }

    /// A closed connection is opened again, but never inside a transaction: what it did is
    /// gone with the old connection, so its statements fail until the transaction ends (and
    /// a COMMIT must not succeed on a connection that never saw them). The call that met the
    /// closing failed; the next one after the transaction gets the new connection.
    fn reconnect_if_closed(&mut self) -> Result<()> {
        let closed = self.broken || self.client.as_ref().is_some_and(|c| c.is_closed());
        let Some(reconnect) = self
            .reconnect
            .as_ref()
            .filter(|_| closed && !self.in_transaction)
        else {
            return Ok(());
        };
        let client = reconnect().map_err(Error::Reconnect)?;
        if let Some(old) = self.client.replace(client) {
            off_runtime(move || drop(old));
        }
        self.statements.clear();
        self.broken = false;
        Ok(())
    }

    fn statement(&mut self, sql: &str) -> Result<postgres::Statement> {
        if let Some(s) = self.statements.get(sql) {
            return Ok(s.clone());
        }
        let translated = translate(sql);
        let prepared = self.call(|c| c.prepare(&translated))?;
        if self.statements.len() >= 512 {
            self.statements.clear();
        }
        self.statements.insert(sql.to_owned(), prepared.clone());
        Ok(prepared)
    }
}

impl Drop for PgSession {
    /// Closing the connection blocks too.
    fn drop(&mut self) {
        if let Some(client) = self.client.take() {
            off_runtime(move || drop(client));
        }
    }
}

enum Conn {
    Sqlite(rusqlite::Connection),
    Postgres(Box<RefCell<PgSession>>),
}

/// A connection to the store's database.
pub struct Db {
    conn: Conn,
}

impl fmt::Debug for Db {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Db({:?})", self.backend())
    }
}

/// The shortest quiet spell inside a write transaction after which PostgreSQL ends the
/// session (tests shorten the lease to seconds; a loaded machine can pause a thread for one).
const MIN_IDLE_WRITER: std::time::Duration = std::time::Duration::from_secs(5);

/// The key of the advisory lock every write transaction takes on PostgreSQL ("scansync" in
/// ASCII): one writer at a time across every node, as SQLite has on one host.
pub const WRITE_LOCK: i64 = 0x7363_616e_7379_6e63;

impl Db {
    pub fn sqlite(conn: rusqlite::Connection) -> Db {
        Db {
            conn: Conn::Sqlite(conn),
        }
    }

    /// A PostgreSQL connection; `reconnect`, when given, replaces it once the server has
    /// closed it (see `PgSession::reconnect_if_closed`).
    pub fn postgres(client: postgres::Client, reconnect: Option<Reconnect>) -> Db {
        Db {
            conn: Conn::Postgres(Box::new(RefCell::new(PgSession {
                client: Some(client),
                statements: HashMap::new(),
                in_transaction: false,
                cursors: 0,
                reconnect,
                broken: false,
            }))),
        }
    }

    pub fn backend(&self) -> Backend {
        match self.conn {
            Conn::Sqlite(_) => Backend::Sqlite,
            Conn::Postgres(_) => Backend::Postgres,
        }
    }

    /// The SQLite connection, for tests of what only SQLite has (PRAGMAs, the file).
    #[cfg(test)]
    pub fn as_sqlite(&self) -> Option<&rusqlite::Connection> {
        match &self.conn {
            Conn::Sqlite(c) => Some(c),
            Conn::Postgres(_) => None,
        }
    }

    pub fn prepare_cached(&self, sql: &str) -> Result<Stmt<'_>> {
        Ok(Stmt(match &self.conn {
            Conn::Sqlite(c) => StmtKind::SqliteCached(c.prepare_cached(sql)?),
            Conn::Postgres(s) => {
                let statement = s.borrow_mut().statement(sql)?;
                StmtKind::Postgres {
                    session: s,
                    statement,
                }
            }
        }))
    }

    /// As [`Db::prepare_cached`], for a statement made once (its text built at run time).
    pub fn prepare(&self, sql: &str) -> Result<Stmt<'_>> {
        Ok(Stmt(match &self.conn {
            Conn::Sqlite(c) => StmtKind::Sqlite(c.prepare(sql)?),
            Conn::Postgres(s) => {
                let translated = translate(sql);
                let statement = s.borrow_mut().call(|c| c.prepare(&translated))?;
                StmtKind::Postgres {
                    session: s,
                    statement,
                }
            }
        }))
    }

    pub fn execute(&self, sql: &str, params: impl Params) -> Result<usize> {
        self.prepare_cached(sql)?.execute(params)
    }

    pub fn query_row<T>(
        &self,
        sql: &str,
        params: impl Params,
        f: impl FnOnce(&Row<'_>) -> Result<T>,
    ) -> Result<T> {
        self.prepare_cached(sql)?.query_row(params, f)
    }

    /// Several statements without parameters (migrations, transaction control).
    pub fn execute_batch(&self, sql: &str) -> Result<()> {
        match &self.conn {
            Conn::Sqlite(c) => c.execute_batch(sql)?,
            Conn::Postgres(s) => s.borrow_mut().call(|c| c.batch_execute(sql))?,
        }
        Ok(())
    }

    /// A write transaction: one writer at a time on the store (SQLite's `BEGIN IMMEDIATE`,
    /// PostgreSQL's [`WRITE_LOCK`]), rolled back unless committed.
    pub fn write_transaction(&mut self) -> Result<Tx<'_>> {
        match &self.conn {
            Conn::Sqlite(c) => c.execute_batch("BEGIN IMMEDIATE")?,
            Conn::Postgres(s) => {
                // The server ends the session of a writer that goes quiet holding the lock
                // (a node cut off or frozen mid-page) after a third of the lease, so the
                // other nodes' heartbeats, which wait for the lock, still come in time.
                let idle = (super::lease_ttl() / 3).max(MIN_IDLE_WRITER).as_millis();
                let begin = format!(
                    "BEGIN; SET LOCAL idle_in_transaction_session_timeout = {idle}; \
                     SELECT pg_advisory_xact_lock({WRITE_LOCK})"
                );
                let mut s = s.borrow_mut();
                if let Err(e) = s.call(|c| c.batch_execute(&begin)) {
                    // A lock wait ended by statement_timeout or a cancel leaves the
                    // transaction aborted: end it, or every later statement fails.
                    let _ = s.call(|c| c.batch_execute("ROLLBACK"));
                    return Err(e);
                }
                s.in_transaction = true;
            }
        }
        Ok(Tx {
            db: self,
            done: false,
        })
    }

    /// A read transaction that sees one state of the store throughout, whatever commits
    /// meanwhile (SQLite's WAL snapshot from the first read; PostgreSQL's REPEATABLE READ).
    /// Takes no lock: writers go on. Dropped, it ends (there is nothing to commit).
    pub fn read_snapshot(&mut self) -> Result<Tx<'_>> {
        self.execute_batch(match self.backend() {
            Backend::Sqlite => "BEGIN DEFERRED",
            Backend::Postgres => "BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY",
        })?;
        self.set_in_transaction(true);
        Ok(Tx {
            db: self,
            done: false,
        })
    }
}

impl Db {
    fn set_in_transaction(&self, open: bool) {
        if let Conn::Postgres(s) = &self.conn {
            s.borrow_mut().in_transaction = open;
        }
    }

    /// Calls `f` on each row of a query that may return more rows than fit in memory
    /// (exports of a large store), reading them a page at a time: SQLite steps its
    /// statement; PostgreSQL, whose client otherwise receives a whole result before the
    /// first row, reads a cursor [`CURSOR_PAGE`] rows per round trip, in a read-only
    /// REPEATABLE READ transaction of its own (or the open [`Tx`]), so every page comes from
    /// the same moment of the store. `f` may use this connection between rows.
    pub fn for_each_row<E: From<Error>>(
        &self,
        sql: &str,
        params: impl Params,
        mut f: impl FnMut(&Row<'_>) -> Result<(), E>,
    ) -> Result<(), E> {
        let session = match &self.conn {
            Conn::Sqlite(c) => {
                let mut stmt = c.prepare(sql).map_err(Error::from)?;
                bind(&mut stmt, params.list())?;
                let mut rows = stmt.raw_query();
                while let Some(row) = rows.next().map_err(Error::from)? {
                    f(&Row::Sqlite(row))?;
                }
                return Ok(());
            }
            Conn::Postgres(s) => s,
        };
        let (cursor, own) = {
            let mut s = session.borrow_mut();
            s.reconnect_if_closed()?;
            s.cursors += 1;
            let own = !s.in_transaction;
            // The cursor lives in a transaction: no reconnecting under it.
            s.in_transaction = true;
            (format!("scansync_rows_{}", s.cursors), own)
        };
        let values = pg_values(params.list());
        let declare = format!("DECLARE {cursor} NO SCROLL CURSOR FOR {}", translate(sql));
        let fetch = format!("FETCH {CURSOR_PAGE} FROM {cursor}");
        let mut read_all = || -> Result<(), E> {
            session.borrow_mut().call(|c| {
                if own {
                    c.batch_execute("BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY")?;
                }
                c.execute(declare.as_str(), &pg_refs(&values)).map(drop)
            })?;
            loop {
                let page = session
                    .borrow_mut()
                    .call(|c| c.query(fetch.as_str(), &[]))?;
                if page.is_empty() {
                    return Ok(());
                }
                for row in &page {
                    f(&Row::Postgres(row))?;
                }
            }
        };
        let read = read_all();
        // A transaction of its own ends here; in the caller's, the cursor closes (with
        // nothing to say if an error already aborted that transaction: its rollback will).
        let end = if own {
            format!("{}; ", if read.is_ok() { "COMMIT" } else { "ROLLBACK" })
        } else {
            format!("CLOSE {cursor}; ")
        };
        let ended = session.borrow_mut().call(|c| c.batch_execute(&end));
        if own {
            session.borrow_mut().in_transaction = false;
        }
        read?;
        ended.map_err(E::from)
    }
}

/// Rows per round trip of [`Db::for_each_row`]'s cursor on PostgreSQL: large enough that
/// the round trips cost little next to the rows, small enough to keep memory flat.
const CURSOR_PAGE: usize = 1000;

/// A transaction; dereferences to its connection. Dropped without [`Tx::commit`], it rolls
/// back (an error or a panic part-way leaves nothing half-written).
pub struct Tx<'a> {
    db: &'a Db,
    done: bool,
}

impl std::ops::Deref for Tx<'_> {
    type Target = Db;
    fn deref(&self) -> &Db {
        self.db
    }
}

impl Tx<'_> {
    pub fn commit(mut self) -> Result<()> {
        self.done = true;
        // Still marked open while COMMIT goes out: it must meet the connection that ran the
        // transaction or fail, never a new one.
        let committed = self.db.execute_batch("COMMIT");
        self.db.set_in_transaction(false);
        committed
    }
}

impl Drop for Tx<'_> {
    fn drop(&mut self) {
        if !self.done {
            self.db.set_in_transaction(false);
            let _ = self.db.execute_batch("ROLLBACK");
        }
    }
}

enum StmtKind<'a> {
    SqliteCached(rusqlite::CachedStatement<'a>),
    Sqlite(rusqlite::Statement<'a>),
    Postgres {
        session: &'a RefCell<PgSession>,
        statement: postgres::Statement,
    },
}

/// A prepared statement.
pub struct Stmt<'a>(StmtKind<'a>);

fn bind(stmt: &mut rusqlite::Statement<'_>, params: &[&dyn Param]) -> Result<()> {
    for (i, p) in params.iter().enumerate() {
        stmt.raw_bind_parameter(i + 1, p.value())?;
    }
    Ok(())
}

fn pg_values<'p>(params: &'p [&'p dyn Param]) -> Vec<Value<'p>> {
    params.iter().map(|p| p.value()).collect()
}

fn pg_refs<'v>(values: &'v [Value<'v>]) -> Vec<&'v (dyn postgres::types::ToSql + Sync)> {
    values
        .iter()
        .map(|v| v as &(dyn postgres::types::ToSql + Sync))
        .collect()
}

impl<'a> Stmt<'a> {
    fn sqlite(&mut self) -> Option<&mut rusqlite::Statement<'a>> {
        match &mut self.0 {
            StmtKind::SqliteCached(s) => Some(s),
            StmtKind::Sqlite(s) => Some(s),
            StmtKind::Postgres { .. } => None,
        }
    }

    /// Runs the statement; the number of rows it changed (triggers' rows not counted).
    pub fn execute(&mut self, params: impl Params) -> Result<usize> {
        if let Some(s) = self.sqlite() {
            bind(s, params.list())?;
            return Ok(s.raw_execute()?);
        }
        let StmtKind::Postgres { session, statement } = &self.0 else {
            unreachable!()
        };
        let values = pg_values(params.list());
        let n = session
            .borrow_mut()
            .call(|c| c.execute(statement, &pg_refs(&values)))?;
        Ok(n as usize)
    }

    pub fn query_row<T>(
        &mut self,
        params: impl Params,
        f: impl FnOnce(&Row<'_>) -> Result<T>,
    ) -> Result<T> {
        self.query_row_and_then(params, f)
    }

    /// [`Stmt::query_row`] with `f` returning its own error type.
    pub fn query_row_and_then<T, E: From<Error>>(
        &mut self,
        params: impl Params,
        f: impl FnOnce(&Row<'_>) -> Result<T, E>,
    ) -> Result<T, E> {
        let mut rows = self.query(params)?;
        match rows.next()? {
            Some(row) => f(&row),
            None => Err(Error::NoRows.into()),
        }
    }

    /// The rows, read one at a time. On PostgreSQL the whole result arrives first: a query
    /// whose result grows with the store belongs in [`Db::for_each_row`].
    pub fn query(&mut self, params: impl Params) -> Result<Rows<'_>> {
        let (session, statement) = match &mut self.0 {
            StmtKind::SqliteCached(s) => {
                bind(s, params.list())?;
                return Ok(Rows::Sqlite(s.raw_query()));
            }
            StmtKind::Sqlite(s) => {
                bind(s, params.list())?;
                return Ok(Rows::Sqlite(s.raw_query()));
            }
            StmtKind::Postgres { session, statement } => (session, statement),
        };
        let values = pg_values(params.list());
        let rows = session
            .borrow_mut()
            .call(|c| c.query(statement, &pg_refs(&values)))?;
        Ok(Rows::Postgres(rows.into_iter(), None))
    }

    pub fn query_map<T, F: FnMut(&Row<'_>) -> Result<T>>(
        &mut self,
        params: impl Params,
        f: F,
    ) -> Result<MappedRows<'_, F>> {
        self.query_and_then(params, f)
    }

    /// [`Stmt::query_map`] with `f` returning its own error type.
    pub fn query_and_then<T, E: From<Error>, F: FnMut(&Row<'_>) -> Result<T, E>>(
        &mut self,
        params: impl Params,
        f: F,
    ) -> Result<MappedRows<'_, F>> {
        Ok(MappedRows {
            rows: self.query(params)?,
            f,
        })
    }
}

/// The rows of a query, read one at a time.
pub enum Rows<'s> {
    Sqlite(rusqlite::Rows<'s>),
    Postgres(std::vec::IntoIter<postgres::Row>, Option<postgres::Row>),
}

impl Rows<'_> {
    pub fn next(&mut self) -> Result<Option<Row<'_>>> {
        match self {
            Rows::Sqlite(rows) => Ok(rows.next()?.map(Row::Sqlite)),
            Rows::Postgres(rest, current) => {
                *current = rest.next();
                Ok(current.as_ref().map(Row::Postgres))
            }
        }
    }
}

/// [`Stmt::query_map`]'s rows, each mapped by `f`.
pub struct MappedRows<'s, F> {
    rows: Rows<'s>,
    f: F,
}

impl<T, E: From<Error>, F: FnMut(&Row<'_>) -> Result<T, E>> Iterator for MappedRows<'_, F> {
    type Item = Result<T, E>;
    fn next(&mut self) -> Option<Self::Item> {
        match self.rows.next() {
            Ok(Some(row)) => Some((self.f)(&row)),
            Ok(None) => None,
            Err(e) => Some(Err(e.into())),
        }
    }
}

/// The store's SQL (SQLite's spelling) in PostgreSQL's: `?N` and `?` placeholders become
/// `$N`; `a IS b` / `a IS NOT b` (SQLite's null-safe comparisons) become
/// `IS NOT DISTINCT FROM` / `IS DISTINCT FROM` unless `b` is NULL (or TRUE/FALSE/DISTINCT);
/// `instr(` becomes `strpos(` (same arguments, same answer); `NOT INDEXED` (a hint to
/// SQLite's planner) goes. Quoted text and identifiers
/// are copied as they are.
pub fn translate(sql: &str) -> String {
    let mut out = String::with_capacity(sql.len() + 16);
    let chars: Vec<char> = sql.chars().collect();
    let mut i = 0;
    // SQLite numbers a bare `?` one past the largest number used so far.
    let mut largest = 0u32;
    // The last word copied, upper-cased, and whether only spaces followed it.
    let word_at = |i: usize| -> Option<(String, usize)> {
        let mut j = i;
        while j < chars.len() && chars[j].is_whitespace() {
            j += 1;
        }
        let start = j;
        while j < chars.len() && (chars[j].is_alphanumeric() || chars[j] == '_') {
            j += 1;
        }
        (j > start).then(|| (chars[start..j].iter().collect::<String>().to_uppercase(), j))
    };
    while i < chars.len() {
        let c = chars[i];
        match c {
            '\'' | '"' => {
                let quote = c;
                out.push(c);
                i += 1;
                while i < chars.len() {
                    out.push(chars[i]);
                    i += 1;
                    if chars[i - 1] == quote {
                        if i < chars.len() && chars[i] == quote {
                            out.push(chars[i]);
                            i += 1;
                        } else {
                            break;
                        }
                    }
                }
            }
            '-' if chars.get(i + 1) == Some(&'-') => {
                while i < chars.len() && chars[i] != '\n' {
                    out.push(chars[i]);
                    i += 1;
                }
            }
            '?' => {
                i += 1;
                let start = i;
                while i < chars.len() && chars[i].is_ascii_digit() {
                    i += 1;
                }
                let number = if i > start {
                    chars[start..i]
                        .iter()
                        .collect::<String>()
                        .parse()
                        .unwrap_or(0)
                } else {
                    largest + 1
                };
                largest = largest.max(number);
                out.push('$');
                out.push_str(&number.to_string());
            }
            c if c.is_alphabetic() || c == '_' => {
                let start = i;
                while i < chars.len() && (chars[i].is_alphanumeric() || chars[i] == '_') {
                    i += 1;
                }
                let word: String = chars[start..i].iter().collect();
                let preceded_by_dot = start > 0 && chars[start - 1] == '.';
                match word.to_uppercase().as_str() {
                    "IS" if !preceded_by_dot => {
                        let mut negated = false;
                        let mut after = i;
                        let mut next = word_at(after);
                        if let Some((w, end)) = &next {
                            if w == "NOT" {
                                negated = true;
                                after = *end;
                                next = word_at(after);
                            }
                        }
                        let keep = matches!(
                            next.as_ref().map(|(w, _)| w.as_str()),
                            Some("NULL" | "TRUE" | "FALSE" | "DISTINCT")
                        );
                        if keep {
                            out.push_str(&word);
                        } else {
                            out.push_str(if negated {
                                "IS DISTINCT FROM"
                            } else {
                                "IS NOT DISTINCT FROM"
                            });
                            i = after;
                        }
                    }
                    "INSTR" if chars.get(i) == Some(&'(') => out.push_str("strpos"),
                    // SQLite's planner hint; PostgreSQL plans for itself.
                    "NOT" if word_at(i).is_some_and(|(w, _)| w == "INDEXED") => {
                        i = word_at(i).map_or(i, |(_, end)| end);
                    }
                    _ => out.push_str(&word),
                }
            }
            c => {
                out.push(c);
                i += 1;
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::translate;

    #[test]
    fn placeholders_become_numbered_dollars_outside_quotes() {
        assert_eq!(
            translate("SELECT ?1, ?, '?' || \"a?\", ?12, ?"),
            "SELECT $1, $2, '?' || \"a?\", $12, $13"
        );
        assert_eq!(translate("x = 'it''s ?1'"), "x = 'it''s ?1'");
    }

    #[test]
    fn null_safe_comparisons_take_postgresql_words() {
        assert_eq!(
            translate("a IS b AND c IS NOT d AND e IS NULL AND f IS NOT NULL"),
            "a IS NOT DISTINCT FROM b AND c IS DISTINCT FROM d AND e IS NULL AND f IS NOT NULL"
        );
        assert_eq!(
            translate("excluded.triage IS findings.triage"),
            "excluded.triage IS NOT DISTINCT FROM findings.triage"
        );
        assert_eq!(
            translate("x IS\n  NOT\n ?2"),
            "x IS DISTINCT FROM\n ?2".replace("?2", "$2")
        );
        assert_eq!(translate("this IS that"), "this IS NOT DISTINCT FROM that");
        assert_eq!(translate("a.is = 1"), "a.is = 1");
    }

    #[test]
    fn instr_is_strpos_and_comments_are_copied() {
        assert_eq!(
            translate("instr(s.name, '@') > 0"),
            "strpos(s.name, '@') > 0"
        );
        assert_eq!(
            translate("instr -- a ? comment\n?"),
            "instr -- a ? comment\n$1"
        );
    }
}
