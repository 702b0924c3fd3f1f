//! Statements run straight on a SQLite connection's C handle, for the one hot path that
//! needs it: report ingest. Through sqlx every statement is a message to the connection's
//! worker thread and back, and a statement with a new SQL text is parsed again; here a
//! batch prepares each statement once and then only binds, steps and resets it, on the
//! calling thread, while sqlx's worker is held off by the connection's lock.
//!
//! The API is safe: a [`Conn`] borrows sqlx's locked handle, so it cannot outlive the lock
//! nor the connection, and a [`Stmt`] borrows its `Conn`. Parameters are bound without a
//! copy and cleared before [`Stmt::execute`] returns, so no borrowed text stays bound.
#![allow(unsafe_code)]

use std::ffi::{c_int, CStr};
use std::marker::PhantomData;
use std::ptr::{self, NonNull};

use libsqlite3_sys as ffi;
use sqlx::sqlite::LockedSqliteHandle;

/// An error SQLite reported, with its extended result code.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("SQLite error {code}: {message}")]
pub struct RawError {
    pub code: i32,
    pub message: String,
}

impl RawError {
    /// `SQLITE_BUSY` or `SQLITE_LOCKED` (any extended code): worth retrying later.
    pub fn is_busy(&self) -> bool {
        matches!(self.code & 0xff, ffi::SQLITE_BUSY | ffi::SQLITE_LOCKED)
    }
}

impl sqlx::error::DatabaseError for RawError {
    fn message(&self) -> &str {
        &self.message
    }

    fn code(&self) -> Option<std::borrow::Cow<'_, str>> {
        Some(self.code.to_string().into())
    }

    fn as_error(&self) -> &(dyn std::error::Error + Send + Sync + 'static) {
        self
    }

    fn as_error_mut(&mut self) -> &mut (dyn std::error::Error + Send + Sync + 'static) {
        self
    }

    fn into_error(self: Box<Self>) -> Box<dyn std::error::Error + Send + Sync + 'static> {
        self
    }

    fn kind(&self) -> sqlx::error::ErrorKind {
        use sqlx::error::ErrorKind;
        match self.code {
            ffi::SQLITE_CONSTRAINT_UNIQUE | ffi::SQLITE_CONSTRAINT_PRIMARYKEY => {
                ErrorKind::UniqueViolation
            }
            ffi::SQLITE_CONSTRAINT_FOREIGNKEY => ErrorKind::ForeignKeyViolation,
            ffi::SQLITE_CONSTRAINT_NOTNULL => ErrorKind::NotNullViolation,
            ffi::SQLITE_CONSTRAINT_CHECK => ErrorKind::CheckViolation,
            _ => ErrorKind::Other,
        }
    }
}

/// A value to bind to one `?` of a statement.
#[derive(Debug, Clone, Copy)]
pub enum Param<'a> {
    Text(&'a str),
    Blob(&'a [u8]),
    Int(i64),
    Null,
}

impl<'a> From<&'a str> for Param<'a> {
    fn from(s: &'a str) -> Self {
        Param::Text(s)
    }
}

impl<'a> From<Option<&'a str>> for Param<'a> {
    fn from(s: Option<&'a str>) -> Self {
        s.map_or(Param::Null, Param::Text)
    }
}

impl<'a> From<&'a [u8]> for Param<'a> {
    fn from(b: &'a [u8]) -> Self {
        Param::Blob(b)
    }
}

impl From<bool> for Param<'_> {
    fn from(b: bool) -> Self {
        Param::Int(i64::from(b))
    }
}

/// A connection's handle, borrowed from sqlx while its lock is held.
pub struct Conn<'a> {
    db: NonNull<ffi::sqlite3>,
    /// Where [`Conn::prepare_cached`] keeps statements: an [`Owned`]'s.
    cache: Option<&'a StmtCache>,
    _lock: PhantomData<&'a mut ()>,
}

/// Prepared statements kept between uses, by their SQL text. A statement is taken out while
/// a [`Stmt`] uses it and put back when that is dropped, so no two uses share one.
type StmtCache = std::cell::RefCell<Vec<(&'static str, NonNull<ffi::sqlite3_stmt>)>>;

impl<'a> Conn<'a> {
    pub fn new(handle: &'a mut LockedSqliteHandle<'_>) -> Conn<'a> {
        Conn {
            db: handle.as_raw_handle(),
            cache: None,
            _lock: PhantomData,
        }
    }

    /// The connection of an [`Owned`], for as long as it is borrowed.
    pub fn owned(owned: &'a mut Owned) -> Conn<'a> {
        Conn {
            db: owned.db,
            cache: Some(&owned.cache),
            _lock: PhantomData,
        }
    }

    fn error(&self, code: c_int) -> RawError {
        // SAFETY: `db` is an open connection for as long as `self` borrows the lock;
        // `sqlite3_errmsg` returns a NUL-terminated string owned by the connection, valid
        // until the next call on it, and copied here before any.
        let message = unsafe {
            let text = ffi::sqlite3_errmsg(self.db.as_ptr());
            if text.is_null() {
                String::new()
            } else {
                CStr::from_ptr(text).to_string_lossy().into_owned()
            }
        };
        // SAFETY: as above; reads the connection's last error code.
        let extended = unsafe { ffi::sqlite3_extended_errcode(self.db.as_ptr()) };
        // The extended code belongs to the last failing call, which is the one that
        // returned `code`, unless that one only returned a primary code.
        let code = if extended & 0xff == code & 0xff {
            extended
        } else {
            code
        };
        RawError { code, message }
    }

    /// Compiles `sql` (one statement) for repeated use.
    pub fn prepare(&self, sql: &str) -> Result<Stmt<'_>, RawError> {
        let len = c_int::try_from(sql.len()).map_err(|_| RawError {
            code: ffi::SQLITE_TOOBIG,
            message: "statement text too long".into(),
        })?;
        let mut stmt = ptr::null_mut();
        // SAFETY: `db` is open (see `error`); `sql` is valid for `len` bytes and need not
        // be NUL-terminated when its length is given; `stmt` is a valid out-pointer.
        let rc = unsafe {
            ffi::sqlite3_prepare_v3(
                self.db.as_ptr(),
                sql.as_ptr().cast(),
                len,
                ffi::SQLITE_PREPARE_PERSISTENT,
                &mut stmt,
                ptr::null_mut(),
            )
        };
        if rc != ffi::SQLITE_OK {
            return Err(self.error(rc));
        }
        match NonNull::new(stmt) {
            Some(stmt) => Ok(Stmt {
                stmt,
                conn: self,
                cached: None,
            }),
            None => Err(RawError {
                code: ffi::SQLITE_MISUSE,
                message: "no statement in the SQL text".into(),
            }),
        }
    }

    /// As [`Conn::prepare`], but on an [`Owned`] connection the statement is compiled once
    /// and kept for the next use, until the connection closes.
    pub fn prepare_cached(&self, sql: &'static str) -> Result<Stmt<'_>, RawError> {
        let Some(cache) = self.cache else {
            return self.prepare(sql);
        };
        let kept = {
            let mut cache = cache.borrow_mut();
            let at = cache.iter().position(|(text, _)| *text == sql);
            at.map(|at| cache.swap_remove(at).1)
        };
        let mut stmt = match kept {
            Some(stmt) => Stmt {
                stmt,
                conn: self,
                cached: None,
            },
            None => self.prepare(sql)?,
        };
        stmt.cached = Some(sql);
        Ok(stmt)
    }

    /// Runs `sql` (statements without parameters or rows, such as `BEGIN`).
    pub fn exec(&self, sql: &str) -> Result<(), RawError> {
        self.prepare(sql)?.execute(&[]).map(|_| ())
    }

    /// Opens a write transaction (`BEGIN IMMEDIATE`) if the write lock is free this
    /// moment: `Ok(false)` when another connection holds it. The connection's busy handler
    /// is off for the attempt and set back to `busy_timeout` after, so that a thread never
    /// sleeps here waiting for a lock whose holder may need that very thread to finish.
    pub fn try_begin_immediate(&self, busy_timeout: std::time::Duration) -> Result<bool, RawError> {
        let restore = c_int::try_from(busy_timeout.as_millis()).unwrap_or(c_int::MAX);
        // SAFETY: `db` is open (see `error`); sets the connection's busy handler.
        unsafe { ffi::sqlite3_busy_timeout(self.db.as_ptr(), 0) };
        let began = self.exec_cached("BEGIN IMMEDIATE");
        // SAFETY: as above.
        unsafe { ffi::sqlite3_busy_timeout(self.db.as_ptr(), restore) };
        match began {
            Ok(()) => Ok(true),
            Err(e) if e.is_busy() => Ok(false),
            Err(e) => Err(e),
        }
    }

    /// [`Conn::exec`] with the statement kept, as [`Conn::prepare_cached`].
    pub fn exec_cached(&self, sql: &'static str) -> Result<(), RawError> {
        self.prepare_cached(sql)?.execute(&[]).map(|_| ())
    }

    /// Whether a transaction is open on the connection.
    pub fn in_transaction(&self) -> bool {
        // SAFETY: `db` is open (see `error`); this only reads a flag.
        unsafe { ffi::sqlite3_get_autocommit(self.db.as_ptr()) == 0 }
    }
}

/// A connection opened here, outside sqlx, for a writer that runs every statement on the
/// calling thread: through sqlx each statement, and even taking hold of the handle, is a trip
/// to the connection's worker thread and back. Closed when dropped.
pub struct Owned {
    db: NonNull<ffi::sqlite3>,
    cache: StmtCache,
}

impl std::fmt::Debug for Owned {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Owned").finish_non_exhaustive()
    }
}

// SAFETY: SQLite connections may be used from any thread, one at a time (the library is
// built thread-safe, and `Owned` is only ever used through `&mut`, so by one thread).
unsafe impl Send for Owned {}

impl Owned {
    /// Opens the existing database file at `path` for reading and writing; statements wait
    /// up to `busy_timeout` for another connection's lock.
    pub fn open(
        path: &std::path::Path,
        busy_timeout: std::time::Duration,
    ) -> Result<Owned, RawError> {
        let name = path
            .to_str()
            .and_then(|p| std::ffi::CString::new(p).ok())
            .ok_or_else(|| RawError {
                code: ffi::SQLITE_CANTOPEN,
                message: format!("database path {} is not UTF-8 without NULs", path.display()),
            })?;
        let mut db = ptr::null_mut();
        // SAFETY: `name` is NUL-terminated; `db` is a valid out-pointer. NOMUTEX: `Owned`
        // is used by one thread at a time, as above.
        let rc = unsafe {
            ffi::sqlite3_open_v2(
                name.as_ptr(),
                &mut db,
                ffi::SQLITE_OPEN_READWRITE | ffi::SQLITE_OPEN_NOMUTEX,
                ptr::null(),
            )
        };
        // Even a failed open may allocate a handle, which holds the error and must be closed.
        let owned = NonNull::new(db).map(|db| Owned {
            db,
            cache: StmtCache::default(),
        });
        match owned {
            Some(owned) if rc == ffi::SQLITE_OK => {
                let ms = c_int::try_from(busy_timeout.as_millis()).unwrap_or(c_int::MAX);
                // SAFETY: `db` is open; sets its busy handler.
                unsafe { ffi::sqlite3_busy_timeout(owned.db.as_ptr(), ms) };
                Ok(owned)
            }
            Some(mut owned) => Err(Conn::owned(&mut owned).error(rc)),
            None => Err(RawError {
                code: rc,
                message: "out of memory opening the database".into(),
            }),
        }
    }
}

impl Drop for Owned {
    fn drop(&mut self) {
        // SAFETY: the kept statements belong to this connection and are finalized exactly
        // once, here (none is in use: a `Stmt` borrows the connection). Then `db`, from
        // `sqlite3_open_v2`, is closed exactly once; every other statement borrowed it and
        // so was finalized before, which is what `sqlite3_close` needs to succeed.
        unsafe {
            for (_, stmt) in self.cache.get_mut().drain(..) {
                ffi::sqlite3_finalize(stmt.as_ptr());
            }
            ffi::sqlite3_close(self.db.as_ptr());
        }
    }
}

/// A prepared statement; finalized when dropped.
pub struct Stmt<'c> {
    stmt: NonNull<ffi::sqlite3_stmt>,
    conn: &'c Conn<'c>,
    /// The SQL text it is kept under, for a statement of [`Conn::prepare_cached`].
    cached: Option<&'static str>,
}

impl Stmt<'_> {
    /// Binds `params` to `?1…?n`, runs the statement to its end (rows it returns are
    /// skipped) and returns how many rows it inserted, updated or deleted.
    pub fn execute(&mut self, params: &[Param<'_>]) -> Result<u64, RawError> {
        let result = self.bind_and_step(params);
        self.reset();
        result
    }

    /// Makes the statement runnable again and drops its bindings: the end of every use.
    fn reset(&mut self) {
        // SAFETY: `stmt` is a live statement of this connection. Reset makes it runnable
        // again, and clearing drops the borrowed texts bound without a copy, so none
        // outlives the call that bound them. Their result codes repeat the step's, which
        // the caller handled.
        unsafe {
            ffi::sqlite3_reset(self.stmt.as_ptr());
            ffi::sqlite3_clear_bindings(self.stmt.as_ptr());
        }
    }

    /// Binds `params` to `?1…?n` and returns the first column of the first row the
    /// statement returns, copied out; `None` when it returns no row.
    pub fn query_value(&mut self, params: &[Param<'_>]) -> Result<Option<Value>, RawError> {
        // SAFETY: `first_row` calls this on a live statement that is on a row.
        self.first_row(params, |stmt| unsafe { column_value(stmt, 0) })
    }

    /// Binds `params` to `?1…?n` and returns every column of the first row the statement
    /// returns, copied out in order; `None` when it returns no row.
    pub fn query_row(&mut self, params: &[Param<'_>]) -> Result<Option<Vec<Value>>, RawError> {
        self.first_row(params, |stmt| {
            // SAFETY: `first_row` calls this on a live statement that is on a row; each
            // index is below the statement's column count.
            unsafe {
                (0..ffi::sqlite3_column_count(stmt))
                    .map(|column| column_value(stmt, column))
                    .collect()
            }
        })
    }

    /// Binds `params`, steps once and, when the statement is on a row, hands it to `read`
    /// (which may read its columns until it returns); then resets the statement.
    fn first_row<T>(
        &mut self,
        params: &[Param<'_>],
        read: impl FnOnce(*mut ffi::sqlite3_stmt) -> T,
    ) -> Result<Option<T>, RawError> {
        let result = self.bind(params).and_then(|()| {
            let stmt = self.stmt.as_ptr();
            // SAFETY: `stmt` is a live statement of this connection with every parameter
            // bound; stepping runs it on this thread, which holds the connection's lock.
            match unsafe { ffi::sqlite3_step(stmt) } {
                // The statement is on a row, so its columns may be read until the next
                // step or reset, which come after `read` returns.
                ffi::SQLITE_ROW => Ok(Some(read(stmt))),
                ffi::SQLITE_DONE => Ok(None),
                rc => Err(self.conn.error(rc)),
            }
        });
        self.reset();
        result
    }

    fn bind_and_step(&mut self, params: &[Param<'_>]) -> Result<u64, RawError> {
        self.bind(params)?;
        let db = self.conn.db.as_ptr();
        let stmt = self.stmt.as_ptr();
        loop {
            // SAFETY: `stmt` is live with every parameter bound; stepping runs it on this
            // thread, which holds the connection's lock.
            match unsafe { ffi::sqlite3_step(stmt) } {
                ffi::SQLITE_ROW => continue,
                ffi::SQLITE_DONE => break,
                rc => return Err(self.conn.error(rc)),
            }
        }
        // SAFETY: `db` is open; reads the row count of the statement that just finished.
        let changes = unsafe { ffi::sqlite3_changes64(db) };
        Ok(u64::try_from(changes).unwrap_or(0))
    }

    fn bind(&mut self, params: &[Param<'_>]) -> Result<(), RawError> {
        let stmt = self.stmt.as_ptr();
        // SAFETY: `stmt` is a live statement of this connection; reads its parameter count.
        let expected = unsafe { ffi::sqlite3_bind_parameter_count(stmt) };
        if usize::try_from(expected).ok() != Some(params.len()) {
            return Err(RawError {
                code: ffi::SQLITE_RANGE,
                message: format!("{} parameters for {expected} placeholders", params.len()),
            });
        }
        for (n, param) in params.iter().enumerate() {
            // At most `expected`, a c_int, so this cannot overflow.
            let index = c_int::try_from(n + 1).unwrap_or(c_int::MAX);
            let rc = match *param {
                Param::Text(text) => {
                    let len = bound_len(text.len(), "text")?;
                    // SAFETY: `text` is valid UTF-8 for `len` bytes and outlives the
                    // binding: SQLITE_STATIC means no copy, and `execute` clears the
                    // bindings before it returns.
                    unsafe {
                        ffi::sqlite3_bind_text(
                            stmt,
                            index,
                            text.as_ptr().cast(),
                            len,
                            ffi::SQLITE_STATIC(),
                        )
                    }
                }
                Param::Blob(bytes) => {
                    let len = bound_len(bytes.len(), "blob")?;
                    // SAFETY: `bytes` is valid for `len` bytes and outlives the binding,
                    // as for a text above.
                    unsafe {
                        ffi::sqlite3_bind_blob(
                            stmt,
                            index,
                            bytes.as_ptr().cast(),
                            len,
                            ffi::SQLITE_STATIC(),
                        )
                    }
                }
                // SAFETY: `stmt` is live and `index` within its parameter count.
                Param::Int(v) => unsafe { ffi::sqlite3_bind_int64(stmt, index, v) },
                // SAFETY: as above.
                Param::Null => unsafe { ffi::sqlite3_bind_null(stmt, index) },
            };
            if rc != ffi::SQLITE_OK {
                return Err(self.conn.error(rc));
            }
        }
        Ok(())
    }
}

/// A column's value as [`Stmt::query_value`] and [`Stmt::query_row`] copy it out.
#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    Null,
    Int(i64),
    Real(f64),
    Text(String),
    Blob(Vec<u8>),
}

/// Column `column` of the row `stmt` is on, copied.
///
/// # Safety
/// `stmt` must be a live statement whose last step returned `SQLITE_ROW`, and `column`
/// below its column count.
unsafe fn column_value(stmt: *mut ffi::sqlite3_stmt, column: c_int) -> Value {
    // SAFETY (for the block): the caller guarantees a current row; each pointer SQLite
    // returns stays valid until the next step, reset or type conversion of the column, and
    // is copied before any of those. The length is read after the pointer, as SQLite
    // documents.
    unsafe {
        match ffi::sqlite3_column_type(stmt, column) {
            ffi::SQLITE_INTEGER => Value::Int(ffi::sqlite3_column_int64(stmt, column)),
            ffi::SQLITE_FLOAT => Value::Real(ffi::sqlite3_column_double(stmt, column)),
            ffi::SQLITE_TEXT => {
                let ptr = ffi::sqlite3_column_text(stmt, column);
                let len = usize::try_from(ffi::sqlite3_column_bytes(stmt, column)).unwrap_or(0);
                if ptr.is_null() || len == 0 {
                    return Value::Text(String::new());
                }
                let bytes = std::slice::from_raw_parts(ptr, len);
                Value::Text(String::from_utf8_lossy(bytes).into_owned())
            }
            ffi::SQLITE_BLOB => {
                let ptr = ffi::sqlite3_column_blob(stmt, column).cast::<u8>();
                let len = usize::try_from(ffi::sqlite3_column_bytes(stmt, column)).unwrap_or(0);
                if ptr.is_null() || len == 0 {
                    return Value::Blob(Vec::new());
                }
                Value::Blob(std::slice::from_raw_parts(ptr, len).to_vec())
            }
            _ => Value::Null,
        }
    }
}

impl Drop for Stmt<'_> {
    fn drop(&mut self) {
        if let (Some(sql), Some(cache)) = (self.cached, self.conn.cache) {
            // Reset and cleared by every `execute`, so ready for the next use.
            cache.borrow_mut().push((sql, self.stmt));
            return;
        }
        // SAFETY: `stmt` came from `sqlite3_prepare_v3` on this connection, which is still
        // open (borrowed), and is finalized exactly once, here.
        unsafe {
            ffi::sqlite3_finalize(self.stmt.as_ptr());
        }
    }
}

/// A text's or blob's length as SQLite's bind calls take it; longer is SQLITE_TOOBIG.
fn bound_len(len: usize, what: &str) -> Result<c_int, RawError> {
    c_int::try_from(len).map_err(|_| RawError {
        code: ffi::SQLITE_TOOBIG,
        message: format!("parameter {what} too long"),
    })
}

#[cfg(test)]
mod tests {
    use sqlx::Connection as _;

    use super::*;

    async fn memory() -> sqlx::SqliteConnection {
        sqlx::SqliteConnection::connect("sqlite::memory:")
            .await
            .unwrap()
    }

    #[tokio::test]
    async fn binds_steps_and_counts_changes() {
        let mut conn = memory().await;
        let mut handle = conn.lock_handle().await.unwrap();
        let raw = Conn::new(&mut handle);
        raw.exec("CREATE TABLE t (k TEXT PRIMARY KEY, v TEXT, n INTEGER)")
            .unwrap();
        let mut insert = raw
            .prepare("INSERT INTO t (k, v, n) VALUES (?1, ?2, ?3) ON CONFLICT (k) DO NOTHING")
            .unwrap();
        // A text with a NUL inside and one that is dropped right after the call: both are
        // bound by length and cleared before `execute` returns.
        let owned = String::from("a\0b");
        assert_eq!(
            insert
                .execute(&["x".into(), owned.as_str().into(), Param::Int(7)])
                .unwrap(),
            1
        );
        drop(owned);
        assert_eq!(
            insert
                .execute(&["x".into(), Param::Null, Param::Int(8)])
                .unwrap(),
            0,
            "a conflict inserts nothing"
        );
        assert_eq!(
            insert
                .execute(&["y".into(), None::<&str>.into(), true.into()])
                .unwrap(),
            1
        );
        let bytes = vec![0u8, 0xff, 7];
        assert_eq!(
            insert
                .execute(&["z".into(), bytes.as_slice().into(), Param::Int(1)])
                .unwrap(),
            1,
            "a blob, NUL bytes and all"
        );
        drop(bytes);
        let mut update = raw
            .prepare("UPDATE t SET n = n + 1 WHERE k <> 'z'")
            .unwrap();
        assert_eq!(update.execute(&[]).unwrap(), 2);
        drop((insert, update));
        drop(handle);

        let blob: (String, Vec<u8>) = sqlx::query_as("SELECT typeof(v), v FROM t WHERE k = 'z'")
            .fetch_one(&mut conn)
            .await
            .unwrap();
        assert_eq!(blob, ("blob".into(), vec![0u8, 0xff, 7]));
        let rows: Vec<(String, Option<String>, i64)> =
            sqlx::query_as("SELECT k, v, n FROM t WHERE k <> 'z' ORDER BY k")
                .fetch_all(&mut conn)
                .await
                .unwrap();
        assert_eq!(
            rows,
            vec![("x".into(), Some("a\0b".into()), 8), ("y".into(), None, 2)]
        );
    }

    #[tokio::test]
    async fn reads_the_first_row_as_one_value_or_every_column() {
        let mut conn = memory().await;
        let mut handle = conn.lock_handle().await.unwrap();
        let raw = Conn::new(&mut handle);
        raw.exec("CREATE TABLE t (k TEXT PRIMARY KEY, v TEXT, n INTEGER, b BLOB, r REAL)")
            .unwrap();
        raw.exec("INSERT INTO t VALUES ('x', 'vee', 7, x'00ff', 1.5), ('y', NULL, 8, NULL, 0)")
            .unwrap();
        let mut select = raw
            .prepare("SELECT v, n, b, r FROM t WHERE k >= ?1 ORDER BY k")
            .unwrap();
        assert_eq!(
            select.query_row(&["x".into()]).unwrap(),
            Some(vec![
                Value::Text("vee".into()),
                Value::Int(7),
                Value::Blob(vec![0, 0xff]),
                Value::Real(1.5),
            ]),
            "the first of two rows, every column"
        );
        assert_eq!(
            select.query_row(&["y".into()]).unwrap(),
            Some(vec![
                Value::Null,
                Value::Int(8),
                Value::Null,
                Value::Real(0.0)
            ])
        );
        assert_eq!(select.query_row(&["z".into()]).unwrap(), None);
        assert_eq!(
            select.query_value(&["x".into()]).unwrap(),
            Some(Value::Text("vee".into()))
        );
        assert_eq!(select.query_value(&["z".into()]).unwrap(), None);
        let e = select.query_row(&[]).unwrap_err();
        assert_eq!(e.code, ffi::SQLITE_RANGE, "a missing parameter is refused");
    }

    #[tokio::test]
    async fn reports_errors_with_their_extended_codes() {
        let mut conn = memory().await;
        let mut handle = conn.lock_handle().await.unwrap();
        let raw = Conn::new(&mut handle);
        raw.exec("CREATE TABLE t (k TEXT PRIMARY KEY NOT NULL)")
            .unwrap();
        let e = raw.prepare("INSERT INTO nowhere VALUES (1)").err().unwrap();
        assert_eq!(e.code, ffi::SQLITE_ERROR);
        assert!(e.message.contains("nowhere"), "{e}");

        let mut insert = raw.prepare("INSERT INTO t (k) VALUES (?)").unwrap();
        insert.execute(&["a".into()]).unwrap();
        let e = insert.execute(&["a".into()]).unwrap_err();
        assert_eq!(e.code, ffi::SQLITE_CONSTRAINT_PRIMARYKEY);
        assert_eq!(
            sqlx::error::DatabaseError::kind(&e),
            sqlx::error::ErrorKind::UniqueViolation
        );
        assert!(!e.is_busy());
        let e = insert.execute(&[]).unwrap_err();
        assert_eq!(e.code, ffi::SQLITE_RANGE, "a missing parameter is refused");
        // The statement is usable again after an error.
        assert_eq!(insert.execute(&["b".into()]).unwrap(), 1);
        assert!(raw.prepare("   ").is_err(), "no statement");
    }

    #[tokio::test]
    async fn transactions_are_seen_and_sqlx_can_use_the_connection_afterwards() {
        let mut conn = memory().await;
        {
            let mut handle = conn.lock_handle().await.unwrap();
            let raw = Conn::new(&mut handle);
            raw.exec("CREATE TABLE t (k INTEGER)").unwrap();
            assert!(!raw.in_transaction());
            raw.exec("BEGIN IMMEDIATE").unwrap();
            assert!(raw.in_transaction());
            raw.prepare("INSERT INTO t VALUES (?)")
                .unwrap()
                .execute(&[Param::Int(1)])
                .unwrap();
            raw.exec("ROLLBACK").unwrap();
            assert!(!raw.in_transaction());
            raw.exec("BEGIN IMMEDIATE").unwrap();
            raw.prepare("INSERT INTO t VALUES (?)")
                .unwrap()
                .execute(&[Param::Int(2)])
                .unwrap();
            raw.exec("COMMIT").unwrap();
        }
        let n: Vec<i64> = sqlx::query_scalar("SELECT k FROM t")
            .fetch_all(&mut conn)
            .await
            .unwrap();
        assert_eq!(n, vec![2]);
    }

    /// A database file with table `t`, made through sqlx, and a pool on it.
    async fn file() -> (tempfile::TempDir, std::path::PathBuf, sqlx::SqlitePool) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("t.db");
        let options = sqlx::sqlite::SqliteConnectOptions::new()
            .filename(&path)
            .create_if_missing(true)
            .journal_mode(sqlx::sqlite::SqliteJournalMode::Wal);
        let pool = sqlx::SqlitePool::connect_with(options).await.unwrap();
        sqlx::query("CREATE TABLE t (k INTEGER)")
            .execute(&pool)
            .await
            .unwrap();
        (dir, path, pool)
    }

    #[tokio::test]
    async fn an_owned_connection_keeps_its_statements_one_use_at_a_time() {
        let (_dir, path, pool) = file().await;
        let mut owned = Owned::open(&path, std::time::Duration::from_secs(5)).unwrap();
        {
            let conn = Conn::owned(&mut owned);
            const INSERT: &str = "INSERT INTO t VALUES (?)";
            let first = conn.prepare_cached(INSERT).unwrap();
            let kept = first.stmt;
            drop(first);
            let mut again = conn.prepare_cached(INSERT).unwrap();
            assert_eq!(again.stmt, kept, "compiled once, used again");
            // While one use holds it, another gets a statement of its own.
            let mut other = conn.prepare_cached(INSERT).unwrap();
            assert_ne!(other.stmt, kept);
            again.execute(&[Param::Int(1)]).unwrap();
            other.execute(&[Param::Int(2)]).unwrap();
            drop((again, other));
            assert_eq!(conn.cache.map(|c| c.borrow().len()), Some(2));
            conn.exec_cached("BEGIN IMMEDIATE").unwrap();
            assert!(conn.in_transaction());
            conn.exec_cached("COMMIT").unwrap();
        }
        // Closing finalizes the kept statements; the rows were committed for everyone.
        drop(owned);
        let n: Vec<i64> = sqlx::query_scalar("SELECT k FROM t ORDER BY k")
            .fetch_all(&pool)
            .await
            .unwrap();
        assert_eq!(n, vec![1, 2]);
    }

    #[tokio::test]
    async fn beginning_a_write_does_not_wait_for_another_connections_lock() {
        let (_dir, path, pool) = file().await;
        let timeout = std::time::Duration::from_secs(30);
        let mut owned = Owned::open(&path, timeout).unwrap();
        let conn = Conn::owned(&mut owned);
        let mut holder = pool.begin_with("BEGIN IMMEDIATE").await.unwrap();
        let asked = std::time::Instant::now();
        assert!(
            !conn.try_begin_immediate(timeout).unwrap(),
            "the lock is taken"
        );
        assert!(
            asked.elapsed() < timeout / 2,
            "answered without waiting out the busy timeout"
        );
        assert!(!conn.in_transaction());
        sqlx::query("INSERT INTO t VALUES (7)")
            .execute(&mut *holder)
            .await
            .unwrap();
        holder.commit().await.unwrap();
        assert!(conn.try_begin_immediate(timeout).unwrap());
        conn.prepare("INSERT INTO t VALUES (8)")
            .unwrap()
            .execute(&[])
            .unwrap();
        conn.exec("COMMIT").unwrap();
    }

    #[test]
    fn an_owned_connection_opens_only_an_existing_database() {
        let dir = tempfile::tempdir().unwrap();
        let e = Owned::open(&dir.path().join("none.db"), std::time::Duration::ZERO).unwrap_err();
        assert_eq!(e.code & 0xff, ffi::SQLITE_CANTOPEN, "{e}");
    }

    #[test]
    fn busy_and_locked_codes_are_retryable() {
        let e = |code| RawError {
            code,
            message: String::new(),
        };
        assert!(e(ffi::SQLITE_BUSY).is_busy());
        assert!(e(ffi::SQLITE_BUSY_SNAPSHOT).is_busy());
        assert!(e(ffi::SQLITE_LOCKED).is_busy());
        assert!(!e(ffi::SQLITE_CONSTRAINT_FOREIGNKEY).is_busy());
    }
}
