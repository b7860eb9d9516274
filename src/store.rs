//! The embedded database: makes the core's [`Record`]s durable in one SQLite
//! file and loads the [`Snapshot`] the core is rebuilt from at start-up.
//!
//! It owns the file's schema (versioned with `PRAGMA user_version`, upgraded
//! by the list `MIGRATIONS`), its pragmas (WAL, `synchronous`) and every SQL
//! statement. Nothing else in the crate speaks SQL.
//!
//! Foreign keys are off on purpose: guests (users without an account) say
//! things and send direct messages, so `sender_id` and `recipient_id` cannot
//! point at `accounts`, and the core, the only writer, already checks what it
//! records. A constraint failure would only throw away a whole batch.

use std::fmt;
use std::fs;
use std::io::{self, Read};
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, mpsc};
use std::thread;
use std::time::{Duration, Instant};

use log::{debug, error, info, warn};
use rusqlite::{
    Connection, OpenFlags, OptionalExtension, Row, Transaction, TransactionBehavior, params,
};

use crate::core::{
    Message, MsgId, Record, RoomId, Snapshot, StoredAccount, StoredDm, StoredRoom, Timestamp,
    UserId,
};

/// What `path` means to [`Store::open`] for a database that lives only in
/// memory and vanishes with the [`Store`] (tests, throwaway servers).
pub const MEMORY: &str = ":memory:";

/// The `--db` value for no database at all: the server keeps everything in
/// its own memory only (as IRC daemons do), with no database thread and no
/// commit to wait for before a delivery. A file named `off` is `./off`.
pub const OFF: &str = "off";

/// The first 16 bytes of every SQLite database file. Checked before SQLite
/// sees the file, so a wrong path never gets a journal or a changed header.
const SQLITE_MAGIC: &[u8; 16] = b"SQLite format 3\0";

/// How long a statement waits for a lock held by someone else. The server
/// owns the file, so a lock held for longer means a second server (or a stuck
/// tool) and waiting would only stall the reactor.
const BUSY_TIMEOUT: Duration = Duration::from_millis(100);

/// Enough room for every statement in [`Store::commit`] and [`Store::load`],
/// so none is ever re-prepared.
const STATEMENT_CACHE: usize = 32;

/// One schema step: `MIGRATIONS[n]` takes a database from version `n` to
/// `n + 1`, inside the transaction that then sets `user_version`.
type Migration = fn(&Transaction<'_>) -> rusqlite::Result<()>;

/// Every schema step, in order. A release that changes the schema appends one
/// step; a published step never changes, because files out there ran it.
const MIGRATIONS: &[Migration] = &[v0_to_v1];

/// The schema version this build writes (`user_version`): one per step.
pub const SCHEMA_VERSION: i64 = MIGRATIONS.len() as i64;

/// Version 1: accounts, rooms, room messages and direct messages in one
/// table (they share one id sequence), memberships and id counters.
fn v0_to_v1(tx: &Transaction<'_>) -> rusqlite::Result<()> {
    tx.execute_batch(
        "CREATE TABLE accounts (
             id       INTEGER PRIMARY KEY,
             name     TEXT NOT NULL,
             name_key TEXT NOT NULL UNIQUE,
             hash     TEXT NOT NULL,
             created  INTEGER NOT NULL
         );
         CREATE TABLE rooms (
             id       INTEGER PRIMARY KEY,
             name     TEXT NOT NULL,
             name_key TEXT NOT NULL UNIQUE,
             topic    TEXT NOT NULL,
             created  INTEGER NOT NULL
         );
         CREATE TABLE messages (
             id           INTEGER PRIMARY KEY,
             room_id      INTEGER NULL,
             recipient_id INTEGER NULL,
             sender_id    INTEGER NOT NULL,
             sender_name  TEXT NOT NULL,
             ts           INTEGER NOT NULL,
             payload      TEXT NOT NULL,
             pending      INTEGER NOT NULL DEFAULT 0
         );
         CREATE INDEX messages_room ON messages (room_id, id);
         CREATE INDEX messages_pending ON messages (recipient_id, id) WHERE pending = 1;
         CREATE TABLE memberships (
             account_id INTEGER NOT NULL,
             room_id    INTEGER NOT NULL,
             seq        INTEGER NOT NULL,
             PRIMARY KEY (account_id, room_id)
         ) WITHOUT ROWID;
         CREATE TABLE meta (
             key   TEXT PRIMARY KEY,
             value INTEGER NOT NULL
         ) WITHOUT ROWID;",
    )
}

pub use crate::config::SyncMode;

/// The value of `PRAGMA synchronous` for a mode.
fn sync_pragma(mode: SyncMode) -> &'static str {
    match mode {
        SyncMode::Normal => "NORMAL",
        SyncMode::Full => "FULL",
    }
}

/// Why the database could not be opened, read or written.
#[derive(Debug)]
#[non_exhaustive]
pub enum StoreError {
    /// The directory that should hold the database file does not exist.
    NoDirectory(String),
    /// The path is a directory or a file that is not an SQLite database;
    /// it was left untouched.
    NotADatabase(String),
    /// The file's permission bits forbid writing.
    ReadOnly(String),
    /// The file was written by a newer chatd; it was left untouched.
    NewerSchema {
        /// The file's `user_version`.
        found: i64,
        /// The newest version this build understands.
        supported: i64,
    },
    /// An SQLite database that chatd did not create (version 0 with tables
    /// already in it, or a negative version); it was left untouched.
    ForeignDatabase(String),
    /// Reading the file's metadata or header failed.
    Io {
        /// The database path.
        path: String,
        /// What the OS said.
        source: io::Error,
    },
    /// SQLite refused a statement (disk full, I/O error, broken constraint).
    Sqlite(rusqlite::Error),
}

impl fmt::Display for StoreError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            StoreError::NoDirectory(p) => {
                write!(f, "database {p}: the directory does not exist")
            }
            StoreError::NotADatabase(p) => {
                write!(f, "database {p}: not an SQLite database (left untouched)")
            }
            StoreError::ReadOnly(p) => write!(f, "database {p}: the file is read-only"),
            StoreError::NewerSchema { found, supported } => write!(
                f,
                "database schema version {found} is newer than this chatd supports \
                 ({supported}); upgrade chatd (the file was left untouched)"
            ),
            StoreError::ForeignDatabase(p) => write!(
                f,
                "database {p}: an SQLite database not created by chatd (left untouched)"
            ),
            StoreError::Io { path, source } => write!(f, "database {path}: {source}"),
            StoreError::Sqlite(e) => write!(f, "database: {e}"),
        }
    }
}

impl std::error::Error for StoreError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            StoreError::Io { source, .. } => Some(source),
            StoreError::Sqlite(e) => Some(e),
            _ => None,
        }
    }
}

impl From<rusqlite::Error> for StoreError {
    fn from(e: rusqlite::Error) -> Self {
        StoreError::Sqlite(e)
    }
}

/// The open database. One per server; only the reactor's thread uses it.
#[derive(Debug)]
pub struct Store {
    /// The connection, with its cache of prepared statements.
    conn: Connection,
}

impl Store {
    /// Opens (or creates) the database at `path`, or a throwaway one for
    /// [`MEMORY`], and brings its schema up to [`SCHEMA_VERSION`].
    ///
    /// A file that is not SQLite, is read-only, or has a newer schema is
    /// refused before anything is written to it.
    pub fn open(path: &str, sync: SyncMode) -> Result<Store, StoreError> {
        if path != MEMORY {
            check_file(path)?;
        }
        // No SQLITE_OPEN_URI: the path is a file name, never a `file:` URI.
        let flags = OpenFlags::SQLITE_OPEN_READ_WRITE
            | OpenFlags::SQLITE_OPEN_CREATE
            | OpenFlags::SQLITE_OPEN_NO_MUTEX;
        let conn = Connection::open_with_flags(path, flags).map_err(|e| not_a_db(path, e))?;
        conn.busy_timeout(BUSY_TIMEOUT)?;
        conn.set_prepared_statement_cache_capacity(STATEMENT_CACHE);

        // Read-only checks first: a refused file must not even switch to WAL,
        // which rewrites its header.
        let found = user_version(&conn).map_err(|e| not_a_db(path, e))?;
        if found > SCHEMA_VERSION {
            return Err(StoreError::NewerSchema {
                found,
                supported: SCHEMA_VERSION,
            });
        }
        if found < 0 || (found == 0 && has_tables(&conn)?) {
            return Err(StoreError::ForeignDatabase(path.to_owned()));
        }

        let mode: String =
            conn.pragma_update_and_check(None, "journal_mode", "WAL", |row| row.get(0))?;
        if path != MEMORY && !mode.eq_ignore_ascii_case("wal") {
            warn!("database {path}: journal mode is {mode}, not WAL");
        }
        conn.pragma_update(None, "synchronous", sync_pragma(sync))?;
        conn.pragma_update(None, "foreign_keys", false)?;

        let mut store = Store { conn };
        if found < SCHEMA_VERSION {
            store.migrate()?;
        }
        Ok(store)
    }

    /// Runs the missing schema steps and sets `user_version`, all in one
    /// transaction, so a crash leaves the file at the old version or the new.
    fn migrate(&mut self) -> Result<(), StoreError> {
        let tx = self
            .conn
            .transaction_with_behavior(TransactionBehavior::Immediate)?;
        // Read again under the write lock, in case another process migrated.
        let found = user_version(&tx)?;
        if found > SCHEMA_VERSION {
            return Err(StoreError::NewerSchema {
                found,
                supported: SCHEMA_VERSION,
            });
        }
        if found == SCHEMA_VERSION {
            return Ok(());
        }
        let from = usize::try_from(found).unwrap_or(0);
        for step in &MIGRATIONS[from..] {
            step(&tx)?;
        }
        tx.pragma_update(None, "user_version", SCHEMA_VERSION)?;
        tx.commit()?;
        Ok(())
    }

    /// Reads everything the core needs at start-up, keeping the last
    /// `history_per_room` messages of each room.
    pub fn load(&self, history_per_room: usize) -> Result<Snapshot, StoreError> {
        // One read transaction, so every query sees the same state.
        let tx = self.conn.unchecked_transaction()?;
        let accounts = load_accounts(&tx)?;
        let rooms = load_rooms(&tx, history_per_room)?;
        let pending_dms = load_pending_dms(&tx)?;

        let max_id = |table: &str| -> rusqlite::Result<u64> {
            tx.prepare_cached(&format!("SELECT COALESCE(MAX(id), 0) FROM {table}"))?
                .query_row([], |row| uint(row, 0))
        };
        let next_user = meta(&tx, "next_user")?
            .max(max_id("accounts")?.saturating_add(1))
            .max(1);
        let next_msg = meta(&tx, "next_msg")?
            .max(max_id("messages")?.saturating_add(1))
            .max(1);
        let next_room = max_id("rooms")?.saturating_add(1);
        tx.finish()?;

        Ok(Snapshot {
            accounts,
            rooms,
            pending_dms,
            next_user,
            next_room,
            next_msg,
        })
    }

    /// Writes `records` in one transaction: all of them or, on error, none.
    /// An empty slice does nothing.
    pub fn commit(&mut self, records: &[Record]) -> Result<(), StoreError> {
        if records.is_empty() {
            return Ok(());
        }
        // Take the write lock up front rather than upgrading a read lock
        // half-way through the batch.
        let tx = self
            .conn
            .transaction_with_behavior(TransactionBehavior::Immediate)?;
        for record in records {
            apply(&tx, record)?;
        }
        tx.commit()?;
        Ok(())
    }
}

/// A failed commit is tried again after this long, doubling up to
/// [`COMMIT_RETRY_MAX`].
const COMMIT_RETRY_MIN: Duration = Duration::from_millis(10);
const COMMIT_RETRY_MAX: Duration = Duration::from_secs(1);

/// While the server stops, a failing commit is retried for this long before
/// its records are given up (the shutdown grace period).
const CLOSING_RETRY_FOR: Duration = Duration::from_secs(3);

/// A commit slower than this is logged.
const SLOW_COMMIT: Duration = Duration::from_millis(50);

/// The database on its own thread, so the event loop never waits for the
/// disk (or for a file another process has locked).
///
/// The loop hands over one batch of records at a time ([`Committer::send`])
/// and keeps working; the thread commits it in one transaction, retrying with
/// a back-off while that fails, then reports the batch's number back
/// ([`Committer::durable`]) and wakes the loop through its `mio::Waker`.
#[derive(Debug)]
pub struct Committer {
    batches: Option<mpsc::SyncSender<(u64, Vec<Record>)>>,
    done: mpsc::Receiver<u64>,
    closing: Arc<AtomicBool>,
    thread: Option<thread::JoinHandle<()>>,
}

impl Committer {
    /// Moves `store` to a new thread that commits what [`Committer::send`]
    /// gives it.
    pub fn spawn(store: Store, waker: Arc<mio::Waker>) -> io::Result<Committer> {
        // One batch in flight and one waiting is all the loop ever sends.
        let (batches, inbox) = mpsc::sync_channel::<(u64, Vec<Record>)>(1);
        let (done_tx, done) = mpsc::channel();
        let closing = Arc::new(AtomicBool::new(false));
        let flag = closing.clone();
        let thread = thread::Builder::new()
            .name("chatd-store".into())
            .spawn(move || {
                let mut store = store;
                for (seq, records) in inbox {
                    if !commit_until_done(&mut store, &records, &flag) {
                        continue;
                    }
                    if done_tx.send(seq).is_err() {
                        return;
                    }
                    if let Err(e) = waker.wake() {
                        error!("store thread cannot wake the event loop: {e}");
                    }
                }
            })?;
        Ok(Committer {
            batches: Some(batches),
            done,
            closing,
            thread: Some(thread),
        })
    }

    /// Hands batch `seq` to the thread. The caller sends the next one only
    /// after [`Committer::durable`] has reported this one, so this does not
    /// wait.
    pub fn send(&self, seq: u64, records: Vec<Record>) {
        if let Some(batches) = &self.batches
            && batches.send((seq, records)).is_err()
        {
            error!("the store thread is gone: records lost");
        }
    }

    /// The highest batch number committed since the last call, if any.
    pub fn durable(&self) -> Option<u64> {
        self.done.try_iter().max()
    }

    /// Commits `last` (the records not sent yet), then stops the thread once
    /// everything sent is durable, or a failing commit has been retried for
    /// the shutdown grace period.
    pub fn finish(mut self, last: Vec<Record>) {
        self.closing.store(true, Ordering::SeqCst);
        if !last.is_empty() {
            self.send(u64::MAX, last);
        }
        self.batches = None;
        if let Some(thread) = self.thread.take()
            && thread.join().is_err()
        {
            error!("the store thread panicked");
        }
    }
}

/// Commits `records`, retrying with a back-off while that fails; false if
/// they were given up (only while the server stops).
fn commit_until_done(store: &mut Store, records: &[Record], closing: &AtomicBool) -> bool {
    let mut backoff = COMMIT_RETRY_MIN;
    let mut failed_at: Option<Instant> = None;
    loop {
        let start = Instant::now();
        match store.commit(records) {
            Ok(()) => {
                let took = start.elapsed();
                if took > SLOW_COMMIT {
                    warn!("database commit of {} records took {took:?}", records.len());
                }
                if failed_at.is_some() {
                    info!("database commit works again: delivering and reading resume");
                }
                return true;
            }
            Err(e) => {
                let first = *failed_at.get_or_insert(start);
                if first == start {
                    error!(
                        "database commit of {} records failed: {e}; holding deliveries and input until it works",
                        records.len()
                    );
                } else {
                    debug!("database commit still failing: {e}");
                }
                if closing.load(Ordering::SeqCst) && first.elapsed() >= CLOSING_RETRY_FOR {
                    error!(
                        "stopping with {} records the database did not take",
                        records.len()
                    );
                    return false;
                }
                thread::sleep(backoff);
                backoff = (backoff * 2).min(COMMIT_RETRY_MAX);
            }
        }
    }
}

/// Refuses, before SQLite opens it, a path whose directory is missing, a
/// read-only file, and a non-empty file without the SQLite header.
fn check_file(path: &str) -> Result<(), StoreError> {
    let io_err = |source| StoreError::Io {
        path: path.to_owned(),
        source,
    };
    if let Some(dir) = Path::new(path).parent()
        && !dir.as_os_str().is_empty()
        && !dir.is_dir()
    {
        return Err(StoreError::NoDirectory(path.to_owned()));
    }
    let meta = match fs::metadata(path) {
        Ok(meta) => meta,
        // A missing file is a new database.
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(io_err(e)),
    };
    if !meta.is_file() {
        return Err(StoreError::NotADatabase(path.to_owned()));
    }
    // Checked by hand: as root, SQLite would write to a 0444 file anyway.
    if meta.permissions().readonly() {
        return Err(StoreError::ReadOnly(path.to_owned()));
    }
    // An empty file is what SQLite itself treats as a new database.
    if meta.len() > 0 {
        let mut header = [0u8; 16];
        let mut file = fs::File::open(path).map_err(io_err)?;
        match file.read_exact(&mut header) {
            Ok(()) if &header == SQLITE_MAGIC => {}
            Ok(()) => return Err(StoreError::NotADatabase(path.to_owned())),
            Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => {
                return Err(StoreError::NotADatabase(path.to_owned()));
            }
            Err(e) => return Err(io_err(e)),
        }
    }
    Ok(())
}

/// Turns SQLite's "file is not a database" into [`StoreError::NotADatabase`]
/// (a file with the right magic and a broken header reaches SQLite).
fn not_a_db(path: &str, e: rusqlite::Error) -> StoreError {
    if e.sqlite_error_code() == Some(rusqlite::ErrorCode::NotADatabase) {
        StoreError::NotADatabase(path.to_owned())
    } else {
        StoreError::Sqlite(e)
    }
}

/// The file's schema version.
fn user_version(conn: &Connection) -> rusqlite::Result<i64> {
    conn.pragma_query_value(None, "user_version", |row| row.get(0))
}

/// True if the file already holds tables, views or indexes.
fn has_tables(conn: &Connection) -> rusqlite::Result<bool> {
    conn.query_row("SELECT EXISTS (SELECT 1 FROM sqlite_schema)", [], |row| {
        row.get(0)
    })
}

/// A core id, counter or time as an SQLite INTEGER. None comes near 2^63;
/// one that did is refused rather than wrapped to a negative number.
fn int(v: u64) -> rusqlite::Result<i64> {
    i64::try_from(v).map_err(|e| rusqlite::Error::ToSqlConversionFailure(Box::new(e)))
}

/// Column `idx` as a core id, counter or time; a negative value is an error.
fn uint(row: &Row<'_>, idx: usize) -> rusqlite::Result<u64> {
    let v: i64 = row.get(idx)?;
    u64::try_from(v).map_err(|_| rusqlite::Error::IntegralValueOutOfRange(idx, v))
}

/// A counter from `meta`, 0 if never written.
fn meta(conn: &Connection, key: &str) -> rusqlite::Result<u64> {
    conn.prepare_cached("SELECT value FROM meta WHERE key = ?1")?
        .query_row([key], |row| uint(row, 0))
        .optional()
        .map(Option::unwrap_or_default)
}

/// Writes one record inside the batch's transaction.
fn apply(tx: &Transaction<'_>, record: &Record) -> rusqlite::Result<()> {
    match record {
        Record::Account {
            id,
            name,
            hash,
            created,
        } => {
            tx.prepare_cached(
                "INSERT INTO accounts (id, name, name_key, hash, created)
                 VALUES (?1, ?2, ?3, ?4, ?5)",
            )?
            .execute(params![
                int(id.0)?,
                &**name,
                name.to_ascii_lowercase(),
                &**hash,
                int(created.0)?
            ])?;
        }
        Record::Room {
            id,
            name,
            topic,
            created,
        } => {
            tx.prepare_cached(
                "INSERT INTO rooms (id, name, name_key, topic, created)
                 VALUES (?1, ?2, ?3, ?4, ?5)",
            )?
            .execute(params![
                int(id.0)?,
                &**name,
                name.to_ascii_lowercase(),
                &**topic,
                int(created.0)?
            ])?;
        }
        Record::Topic { room, topic } => {
            tx.prepare_cached("UPDATE rooms SET topic = ?2 WHERE id = ?1")?
                .execute(params![int(room.0)?, &**topic])?;
        }
        Record::Message(m) => {
            tx.prepare_cached(
                "INSERT INTO messages (id, room_id, sender_id, sender_name, ts, payload)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
            )?
            .execute(params![
                int(m.id.0)?,
                int(m.room.0)?,
                int(m.sender.0)?,
                &*m.sender_name,
                int(m.at.0)?,
                &*m.text
            ])?;
        }
        Record::Dm {
            id,
            from,
            from_name,
            to,
            at,
            text,
            pending,
        } => {
            tx.prepare_cached(
                "INSERT INTO messages
                     (id, recipient_id, sender_id, sender_name, ts, payload, pending)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
            )?
            .execute(params![
                int(id.0)?,
                int(to.0)?,
                int(from.0)?,
                &**from_name,
                int(at.0)?,
                &**text,
                pending
            ])?;
        }
        Record::DmsDelivered { ids } => {
            let mut stmt =
                tx.prepare_cached("UPDATE messages SET pending = 0 WHERE id = ?1 AND pending = 1")?;
            for id in ids {
                stmt.execute([int(id.0)?])?;
            }
        }
        Record::Joined { user, room } => {
            // Join order is per account: one past the account's latest join.
            // Joining a room it is already in keeps the original place.
            tx.prepare_cached(
                "INSERT OR IGNORE INTO memberships (account_id, room_id, seq)
                 SELECT ?1, ?2, COALESCE(MAX(seq), 0) + 1
                 FROM memberships WHERE account_id = ?1",
            )?
            .execute([int(user.0)?, int(room.0)?])?;
        }
        Record::Left { user, room } => {
            tx.prepare_cached("DELETE FROM memberships WHERE account_id = ?1 AND room_id = ?2")?
                .execute([int(user.0)?, int(room.0)?])?;
        }
        Record::Counters {
            next_user,
            next_msg,
        } => {
            // Only ever raised: an old batch must not make ids reusable.
            let mut stmt = tx.prepare_cached(
                "INSERT INTO meta (key, value) VALUES (?1, ?2)
                 ON CONFLICT (key) DO UPDATE SET value = MAX(value, excluded.value)",
            )?;
            stmt.execute(params!["next_user", int(*next_user)?])?;
            stmt.execute(params!["next_msg", int(*next_msg)?])?;
        }
    }
    Ok(())
}

/// Every account by id, each with its rooms in join order.
fn load_accounts(conn: &Connection) -> rusqlite::Result<Vec<StoredAccount>> {
    let mut accounts: Vec<StoredAccount> = conn
        .prepare_cached("SELECT id, name, hash, created FROM accounts ORDER BY id")?
        .query_map([], |row| {
            Ok(StoredAccount {
                id: UserId(uint(row, 0)?),
                name: row.get(1)?,
                hash: row.get(2)?,
                created: Timestamp(uint(row, 3)?),
                rooms: Vec::new(),
            })
        })?
        .collect::<rusqlite::Result<_>>()?;

    // Sorted by account like `accounts`, so one merging pass places them.
    // The join drops memberships of rooms that do not exist.
    let mut stmt = conn.prepare_cached(
        "SELECT m.account_id, m.room_id FROM memberships m
         JOIN rooms r ON r.id = m.room_id
         ORDER BY m.account_id, m.seq",
    )?;
    let mut rows = stmt.query([])?;
    let mut next = accounts.iter_mut().peekable();
    while let Some(row) = rows.next()? {
        let user = UserId(uint(row, 0)?);
        let room = RoomId(uint(row, 1)?);
        while next.next_if(|a| a.id < user).is_some() {}
        if let Some(account) = next.peek_mut()
            && account.id == user
        {
            account.rooms.push(room);
        }
    }
    Ok(accounts)
}

/// Every room by id, each with its last `history` messages, oldest first.
fn load_rooms(conn: &Connection, history: usize) -> rusqlite::Result<Vec<StoredRoom>> {
    let mut rooms: Vec<StoredRoom> = conn
        .prepare_cached("SELECT id, name, topic, created FROM rooms ORDER BY id")?
        .query_map([], |row| {
            Ok(StoredRoom {
                id: RoomId(uint(row, 0)?),
                name: row.get(1)?,
                topic: row.get(2)?,
                created: Timestamp(uint(row, 3)?),
                history: Vec::new(),
            })
        })?
        .collect::<rusqlite::Result<_>>()?;

    let limit = i64::try_from(history).unwrap_or(i64::MAX);
    // Newest first so the index stops after `limit` rows; reversed below.
    let mut stmt = conn.prepare_cached(
        "SELECT id, sender_id, sender_name, ts, payload FROM messages
         WHERE room_id = ?1 ORDER BY id DESC LIMIT ?2",
    )?;
    for room in &mut rooms {
        let id = room.id;
        room.history = stmt
            .query_map(params![int(id.0)?, limit], |row| {
                Ok(Message {
                    id: MsgId(uint(row, 0)?),
                    sender: UserId(uint(row, 1)?),
                    sender_mask: Message::stored_mask(&row.get::<_, String>(2)?),
                    sender_name: Arc::from(row.get::<_, String>(2)?),
                    room: id,
                    at: Timestamp(uint(row, 3)?),
                    text: Arc::from(row.get::<_, String>(4)?),
                })
            })?
            .collect::<rusqlite::Result<_>>()?;
        room.history.reverse();
    }
    Ok(rooms)
}

/// Direct messages still waiting for their recipient, oldest first.
fn load_pending_dms(conn: &Connection) -> rusqlite::Result<Vec<StoredDm>> {
    // INDEXED BY: the partial index holds only pending rows, where the
    // planner would otherwise walk the whole table in id order.
    conn.prepare_cached(
        "SELECT id, sender_name, recipient_id, ts, payload
         FROM messages INDEXED BY messages_pending
         WHERE pending = 1 ORDER BY id",
    )?
    .query_map([], |row| {
        Ok(StoredDm {
            id: MsgId(uint(row, 0)?),
            from_name: row.get(1)?,
            to: UserId(uint(row, 2)?),
            at: Timestamp(uint(row, 3)?),
            text: row.get(4)?,
        })
    })?
    .collect()
}

#[cfg(test)]
mod tests {
    use std::os::unix::fs::PermissionsExt;
    use std::path::PathBuf;

    use tempfile::TempDir;

    use super::*;

    /// A fresh directory (removed on drop) and a database path inside it.
    fn temp_db() -> (TempDir, String) {
        let dir = tempfile::tempdir().expect("temp dir");
        let path = dir.path().join("chatd.db");
        (dir, path.to_str().expect("utf-8 temp path").to_owned())
    }

    fn open(path: &str) -> Store {
        Store::open(path, SyncMode::Normal).expect("opens")
    }

    fn account(id: u64, name: &str) -> Record {
        Record::Account {
            id: UserId(id),
            name: name.into(),
            hash: format!("$argon2id$v=19$hash-of-{name}").into(),
            created: Timestamp(1_000 + id),
        }
    }

    fn stored_account(id: u64, name: &str, rooms: &[u64]) -> StoredAccount {
        StoredAccount {
            id: UserId(id),
            name: name.to_owned(),
            hash: format!("$argon2id$v=19$hash-of-{name}"),
            created: Timestamp(1_000 + id),
            rooms: rooms.iter().map(|&r| RoomId(r)).collect(),
        }
    }

    fn room(id: u64, name: &str) -> Record {
        Record::Room {
            id: RoomId(id),
            name: name.into(),
            topic: "".into(),
            created: Timestamp(2_000 + id),
        }
    }

    fn message(id: u64, room: u64, sender: u64, name: &str) -> Message {
        Message {
            id: MsgId(id),
            sender: UserId(sender),
            sender_name: name.into(),
            sender_mask: Message::stored_mask(name),
            room: RoomId(room),
            at: Timestamp(10_000 + id),
            text: format!("message {id}").into(),
        }
    }

    fn say(id: u64, room: u64, sender: u64, name: &str) -> Record {
        Record::Message(Arc::new(message(id, room, sender, name)))
    }

    fn dm(id: u64, from: (u64, &str), to: u64, pending: bool) -> Record {
        Record::Dm {
            id: MsgId(id),
            from: UserId(from.0),
            from_name: from.1.into(),
            to: UserId(to),
            at: Timestamp(10_000 + id),
            text: format!("dm {id}").into(),
            pending,
        }
    }

    fn stored_dm(id: u64, from_name: &str, to: u64) -> StoredDm {
        StoredDm {
            id: MsgId(id),
            from_name: from_name.to_owned(),
            to: UserId(to),
            at: Timestamp(10_000 + id),
            text: format!("dm {id}"),
        }
    }

    fn joined(user: u64, room: u64) -> Record {
        Record::Joined {
            user: UserId(user),
            room: RoomId(room),
        }
    }

    fn counters(next_user: u64, next_msg: u64) -> Record {
        Record::Counters {
            next_user,
            next_msg,
        }
    }

    fn table_names(conn: &Connection) -> Vec<String> {
        let mut stmt = conn
            .prepare("SELECT name FROM sqlite_schema WHERE type = 'table' ORDER BY name")
            .expect("prepares");
        stmt.query_map([], |row| row.get(0))
            .expect("queries")
            .collect::<rusqlite::Result<_>>()
            .expect("reads")
    }

    #[test]
    fn schema_is_created_then_reused() {
        let (_dir, path) = temp_db();
        drop(open(&path));

        let store = open(&path);
        assert_eq!(user_version(&store.conn).expect("version"), 1);
        assert_eq!(
            table_names(&store.conn),
            ["accounts", "memberships", "messages", "meta", "rooms"]
        );
        let mode: String = store
            .conn
            .pragma_query_value(None, "journal_mode", |row| row.get(0))
            .expect("journal mode");
        assert_eq!(mode, "wal");
        assert_eq!(store.load(10).expect("loads"), empty_snapshot());
    }

    fn empty_snapshot() -> Snapshot {
        Snapshot {
            next_user: 1,
            next_room: 1,
            next_msg: 1,
            ..Snapshot::default()
        }
    }

    #[test]
    fn sync_mode_sets_synchronous() {
        let (_dir, path) = temp_db();
        for (mode, value) in [(SyncMode::Normal, 1), (SyncMode::Full, 2)] {
            let store = Store::open(&path, mode).expect("opens");
            let got: i64 = store
                .conn
                .pragma_query_value(None, "synchronous", |row| row.get(0))
                .expect("synchronous");
            assert_eq!(got, value, "{mode:?}");
        }
    }

    #[test]
    fn round_trip_gives_the_expected_snapshot() {
        let (_dir, path) = temp_db();
        let mut store = open(&path);
        // Users 1 (alice) and 2 (Bob) have accounts; 3 is a guest.
        store
            .commit(&[
                account(1, "alice"),
                account(2, "Bob"),
                room(1, "#lobby"),
                room(2, "#Rust"),
                room(3, "#quiet"),
                joined(1, 2),
                joined(1, 1),
                joined(2, 1),
                joined(1, 3),
            ])
            .expect("commits");
        store
            .commit(&[
                Record::Topic {
                    room: RoomId(2),
                    topic: "borrowck support group".into(),
                },
                say(10, 1, 1, "alice"),
                say(11, 2, 1, "alice"),
                say(12, 1, 3, "guest3"),
                say(13, 1, 2, "Bob"),
                say(14, 1, 1, "alice"),
                say(15, 2, 2, "Bob"),
                say(16, 1, 2, "Bob"),
                dm(17, (1, "alice"), 2, true),
                dm(18, (3, "guest3"), 1, false),
                dm(19, (2, "Bob"), 1, true),
                dm(20, (1, "alice"), 2, true),
                // Leaves #quiet, then joins #lobby again: the place is kept.
                Record::Left {
                    user: UserId(1),
                    room: RoomId(3),
                },
                joined(1, 1),
                counters(5, 21),
            ])
            .expect("commits");
        store
            .commit(&[
                Record::DmsDelivered {
                    ids: vec![MsgId(17), MsgId(18)],
                },
                joined(1, 3),
                Record::Left {
                    user: UserId(2),
                    room: RoomId(1),
                },
                joined(2, 2),
                counters(7, 25),
            ])
            .expect("commits");
        drop(store);

        let snapshot = open(&path).load(3).expect("loads");
        let expected = Snapshot {
            accounts: vec![
                stored_account(1, "alice", &[2, 1, 3]),
                stored_account(2, "Bob", &[2]),
            ],
            rooms: vec![
                StoredRoom {
                    id: RoomId(1),
                    name: "#lobby".to_owned(),
                    topic: String::new(),
                    created: Timestamp(2_001),
                    history: vec![
                        message(13, 1, 2, "Bob"),
                        message(14, 1, 1, "alice"),
                        message(16, 1, 2, "Bob"),
                    ],
                },
                StoredRoom {
                    id: RoomId(2),
                    name: "#Rust".to_owned(),
                    topic: "borrowck support group".to_owned(),
                    created: Timestamp(2_002),
                    history: vec![message(11, 2, 1, "alice"), message(15, 2, 2, "Bob")],
                },
                StoredRoom {
                    id: RoomId(3),
                    name: "#quiet".to_owned(),
                    topic: String::new(),
                    created: Timestamp(2_003),
                    history: Vec::new(),
                },
            ],
            pending_dms: vec![stored_dm(19, "Bob", 1), stored_dm(20, "alice", 2)],
            next_user: 7,
            next_room: 4,
            next_msg: 25,
        };
        assert_eq!(snapshot, expected);

        // No history wanted: rooms come back without messages.
        let bare = open(&path).load(0).expect("loads");
        assert!(bare.rooms.iter().all(|r| r.history.is_empty()));
    }

    #[test]
    fn counters_never_go_backwards() {
        let (_dir, path) = temp_db();
        let mut store = open(&path);
        store.commit(&[counters(50, 500)]).expect("commits");
        store.commit(&[counters(10, 100)]).expect("commits");
        store.commit(&[counters(60, 400)]).expect("commits");
        drop(store);
        let snapshot = open(&path).load(10).expect("loads");
        assert_eq!((snapshot.next_user, snapshot.next_msg), (60, 500));
    }

    #[test]
    fn ids_continue_past_stored_rows_without_counters() {
        let (_dir, path) = temp_db();
        let mut store = open(&path);
        store
            .commit(&[
                account(7, "carol"),
                room(4, "#ops"),
                say(40, 4, 7, "carol"),
                dm(41, (7, "carol"), 7, false),
                // Counters lag behind the rows: the rows win.
                counters(3, 12),
            ])
            .expect("commits");
        drop(store);
        let snapshot = open(&path).load(10).expect("loads");
        assert_eq!(
            (snapshot.next_user, snapshot.next_room, snapshot.next_msg),
            (8, 5, 42)
        );
    }

    #[test]
    fn a_failing_batch_writes_nothing() {
        let (_dir, path) = temp_db();
        let mut store = open(&path);
        store.commit(&[account(1, "alice")]).expect("commits");
        // Same name in other case: the UNIQUE name_key rejects the batch.
        let err = store
            .commit(&[room(1, "#lobby"), account(2, "ALICE")])
            .expect_err("duplicate name");
        assert!(matches!(err, StoreError::Sqlite(_)), "{err}");
        store.commit(&[]).expect("empty batch");
        let snapshot = store.load(10).expect("loads");
        assert_eq!(snapshot.accounts, [stored_account(1, "alice", &[])]);
        assert!(snapshot.rooms.is_empty());
    }

    #[test]
    fn ids_beyond_i64_are_refused_not_wrapped() {
        let mut store = Store::open(MEMORY, SyncMode::Normal).expect("opens");
        let err = store
            .commit(&[
                room(1, "#lobby"),
                Record::Account {
                    id: UserId(u64::MAX),
                    name: "max".into(),
                    hash: "h".into(),
                    created: Timestamp(0),
                },
            ])
            .expect_err("out of range");
        assert!(matches!(err, StoreError::Sqlite(_)), "{err}");
        assert!(store.load(1).expect("loads").rooms.is_empty());
    }

    #[test]
    fn newer_schema_is_refused_untouched() {
        let (_dir, path) = temp_db();
        drop(open(&path));
        {
            let conn = Connection::open(&path).expect("opens");
            conn.pragma_update(None, "user_version", 2)
                .expect("sets version");
        }
        let before = fs::read(&path).expect("reads");
        let err = Store::open(&path, SyncMode::Full).expect_err("refused");
        assert!(
            matches!(
                err,
                StoreError::NewerSchema {
                    found: 2,
                    supported: 1
                }
            ),
            "{err}"
        );
        assert!(err.to_string().contains("newer"), "{err}");
        assert_eq!(fs::read(&path).expect("reads"), before);
    }

    #[test]
    fn foreign_sqlite_database_is_refused_untouched() {
        let (_dir, path) = temp_db();
        {
            let conn = Connection::open(&path).expect("opens");
            conn.execute_batch("CREATE TABLE notes (body TEXT)")
                .expect("creates");
        }
        let before = fs::read(&path).expect("reads");
        let err = Store::open(&path, SyncMode::Normal).expect_err("refused");
        assert!(matches!(err, StoreError::ForeignDatabase(_)), "{err}");
        assert_eq!(fs::read(&path).expect("reads"), before);
    }

    #[test]
    fn text_file_is_not_a_database_and_stays_unchanged() {
        let (dir, path) = temp_db();
        for text in [
            &b"alice: hello\nbob: hi there, this is a log file\n"[..],
            b"hi",
        ] {
            fs::write(&path, text).expect("writes");
            let err = Store::open(&path, SyncMode::Normal).expect_err("refused");
            assert!(
                matches!(&err, StoreError::NotADatabase(p) if *p == path),
                "{err}"
            );
            assert!(err.to_string().contains("not an SQLite database"), "{err}");
            assert_eq!(fs::read(&path).expect("reads"), text);
        }
        // Nor did SQLite leave a journal beside it.
        let names: Vec<PathBuf> = fs::read_dir(dir.path())
            .expect("lists")
            .map(|e| e.expect("entry").path())
            .collect();
        assert_eq!(names, [PathBuf::from(&path)]);
    }

    #[test]
    fn sqlite_magic_with_a_broken_header_is_not_a_database() {
        let (_dir, path) = temp_db();
        let mut bytes = SQLITE_MAGIC.to_vec();
        bytes.extend_from_slice(&[0xff; 200]);
        fs::write(&path, &bytes).expect("writes");
        let err = Store::open(&path, SyncMode::Normal).expect_err("refused");
        assert!(matches!(err, StoreError::NotADatabase(_)), "{err}");
        assert_eq!(fs::read(&path).expect("reads"), bytes);
    }

    #[test]
    fn read_only_file_is_refused() {
        let (_dir, path) = temp_db();
        drop(open(&path));
        fs::set_permissions(&path, fs::Permissions::from_mode(0o444)).expect("chmod");
        let err = Store::open(&path, SyncMode::Normal).expect_err("refused");
        assert!(
            matches!(&err, StoreError::ReadOnly(p) if *p == path),
            "{err}"
        );
        assert!(err.to_string().contains("read-only"), "{err}");
    }

    #[test]
    fn missing_directory_is_a_clear_error() {
        let dir = tempfile::tempdir().expect("temp dir");
        let path = dir.path().join("no/such/dir/chatd.db");
        let path = path.to_str().expect("utf-8");
        let err = Store::open(path, SyncMode::Normal).expect_err("refused");
        assert!(matches!(err, StoreError::NoDirectory(_)), "{err}");
        assert!(
            err.to_string().contains("directory does not exist"),
            "{err}"
        );
    }

    #[test]
    fn a_directory_is_not_a_database() {
        let dir = tempfile::tempdir().expect("temp dir");
        let path = dir.path().to_str().expect("utf-8");
        let err = Store::open(path, SyncMode::Normal).expect_err("refused");
        assert!(matches!(err, StoreError::NotADatabase(_)), "{err}");
    }

    #[test]
    fn missing_and_empty_files_become_new_databases() {
        let (_dir, path) = temp_db();
        fs::write(&path, b"").expect("writes");
        assert_eq!(open(&path).load(1).expect("loads"), empty_snapshot());
        assert!(fs::metadata(&path).expect("exists").len() > 0);
    }

    #[test]
    fn memory_database_works() {
        let mut store = Store::open(MEMORY, SyncMode::Normal).expect("opens");
        store
            .commit(&[account(1, "alice"), room(1, "#lobby"), joined(1, 1)])
            .expect("commits");
        store.commit(&[say(1, 1, 1, "alice")]).expect("commits");
        let snapshot = store.load(5).expect("loads");
        assert_eq!(snapshot.accounts, [stored_account(1, "alice", &[1])]);
        assert_eq!(snapshot.rooms[0].history, [message(1, 1, 1, "alice")]);
        assert_eq!((snapshot.next_user, snapshot.next_msg), (2, 2));
    }

    #[test]
    fn queries_use_their_indexes() {
        let store = Store::open(MEMORY, SyncMode::Normal).expect("opens");
        let plan = |sql: &str| -> String {
            let mut stmt = store
                .conn
                .prepare(&format!("EXPLAIN QUERY PLAN {sql}"))
                .expect("prepares");
            let rows: Vec<String> = stmt
                .query_map([], |row| row.get(3))
                .expect("queries")
                .collect::<rusqlite::Result<_>>()
                .expect("reads");
            rows.join("; ")
        };
        let history = plan("SELECT id FROM messages WHERE room_id = 1 ORDER BY id DESC LIMIT 5");
        assert!(history.contains("messages_room"), "{history}");
        assert!(!history.contains("TEMP B-TREE"), "{history}");
        let pending = plan(
            "SELECT id FROM messages INDEXED BY messages_pending WHERE pending = 1 ORDER BY id",
        );
        assert!(pending.contains("messages_pending"), "{pending}");
    }
}
