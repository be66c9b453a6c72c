//! The embedded store: CouchDB's document and revision semantics on SQLite, on disk.
//!
//! SQLite gives ACID writes that survive a restart, and lets the CLI write while a
//! broker runs on the same file (WAL mode); the broker sees such writes through
//! [`Store::changes`], which polls the sequence column.
//!
//! Writes commit in groups: one writer thread takes every write waiting for it into one
//! transaction and one fsync (`synchronous=FULL`), each write in a savepoint of its own so
//! a refused one changes nothing, and answers each caller only once the group is
//! committed: an answered write survives a power cut, as before. Reads run on a pool of
//! their own connections (WAL readers never wait for the writer).

use super::{Changes, DocChange, Selector, Store, StoreError};
use crate::domain::secret::sha256_hex;
use async_trait::async_trait;
use rusqlite::{params, Connection, OptionalExtension};
use serde_json::{Map, Value};
use std::any::Any;
use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{mpsc, Arc, Mutex};
use std::time::Duration;

/// How often a waiting `changes` call looks for new rows.
const CHANGES_POLL: Duration = Duration::from_millis(200);

/// Reader connections: reads on one never wait for the others or the writer.
const READERS: usize = 4;
/// Writes one group commits at most.
const MAX_GROUP: usize = 512;

/// A write run by the writer thread inside the group's transaction; what it returns goes
/// to its caller once the group is committed.
type WriteJob = Box<dyn FnOnce(&Connection) -> Result<Box<dyn Any + Send>, StoreError> + Send>;
type Reply = tokio::sync::oneshot::Sender<Result<Box<dyn Any + Send>, StoreError>>;

/// A SQLite file holding every database as rows of `(db, id, rev, body)`.
#[derive(Clone)]
pub struct EmbeddedStore {
    readers: Arc<Vec<Mutex<Connection>>>,
    next_reader: Arc<AtomicUsize>,
    writer: mpsc::Sender<(WriteJob, Reply)>,
    commits: Arc<AtomicUsize>,
}

impl std::fmt::Debug for EmbeddedStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("EmbeddedStore")
    }
}

/// A selector field path as an SQL string literal: `'$.oauth.query.connection_id'`. Paths
/// come from code, never from requests; quotes are doubled all the same.
fn json_path(field: &str) -> String {
    format!("'$.{}'", field.replace('\'', "''"))
}

/// The selector as an SQL condition on `body`, with its values as parameters. The path is
/// written literally so that SQLite can use the expression indexes of `ensure_index`.
fn sql_condition(selector: &Selector, out: &mut String, params: &mut Vec<rusqlite::types::Value>) {
    let bind = |v: &Value, params: &mut Vec<rusqlite::types::Value>| -> String {
        params.push(match v {
            Value::String(s) => s.clone().into(),
            Value::Number(n) if n.is_i64() => n.as_i64().unwrap_or_default().into(),
            Value::Number(n) => n.as_f64().unwrap_or_default().into(),
            Value::Bool(b) => i64::from(*b).into(),
            other => other.to_string().into(),
        });
        format!("?{}", params.len())
    };
    match selector {
        Selector::Eq(path, v) => {
            let p = bind(v, params);
            out.push_str(&format!("json_extract(body, {}) = {p}", json_path(path)));
        }
        Selector::Lt(path, n) => {
            let p = bind(&Value::from(*n), params);
            out.push_str(&format!("json_extract(body, {}) < {p}", json_path(path)));
        }
        Selector::Contains(path, v) => {
            let p = bind(v, params);
            out.push_str(&format!(
                "EXISTS (SELECT 1 FROM json_each(body, {}) WHERE json_each.value = {p})",
                json_path(path)
            ));
        }
        Selector::And(all) if all.is_empty() => out.push('1'),
        Selector::And(all) => {
            for (i, s) in all.iter().enumerate() {
                if i > 0 {
                    out.push_str(" AND ");
                }
                out.push('(');
                sql_condition(s, out, params);
                out.push(')');
            }
        }
    }
}

/// A database name as an SQL string literal. Names come from code and configuration, never
/// from requests; quotes are doubled all the same.
fn sql_text(name: &str) -> String {
    format!("'{}'", name.replace('\'', "''"))
}

fn sql(e: rusqlite::Error) -> StoreError {
    StoreError::Unavailable(format!("embedded store: {e}"))
}

impl EmbeddedStore {
    /// Opens (or creates) `dir/broker.sqlite3`.
    pub fn open(dir: &Path) -> Result<EmbeddedStore, StoreError> {
        std::fs::create_dir_all(dir)
            .map_err(|e| StoreError::Unavailable(format!("creating {}: {e}", dir.display())))?;
        let file = dir.join("broker.sqlite3");
        let conn = connect(&file)?;
        conn.execute_batch(
            "PRAGMA journal_mode=WAL;
             PRAGMA synchronous=FULL;
             CREATE TABLE IF NOT EXISTS dbs (name TEXT PRIMARY KEY);
             CREATE TABLE IF NOT EXISTS docs (
                 db TEXT NOT NULL, id TEXT NOT NULL, rev TEXT NOT NULL,
                 deleted INTEGER NOT NULL DEFAULT 0, body TEXT NOT NULL, seq INTEGER NOT NULL,
                 PRIMARY KEY (db, id));
             CREATE INDEX IF NOT EXISTS docs_by_seq ON docs (db, seq);
             -- Each write takes the next sequence: MAX(seq) must not scan the table.
             CREATE INDEX IF NOT EXISTS docs_seq ON docs (seq);",
        )
        .map_err(sql)?;
        let readers = (0..READERS)
            .map(|_| connect(&file).map(Mutex::new))
            .collect::<Result<Vec<_>, _>>()?;
        let (writer, jobs) = mpsc::channel();
        let commits = Arc::new(AtomicUsize::new(0));
        let counted = commits.clone();
        std::thread::Builder::new()
            .name("embedded-store-writer".into())
            .spawn(move || commit_groups(conn, jobs, &counted))
            .map_err(|e| StoreError::Unavailable(format!("starting the writer: {e}")))?;
        Ok(EmbeddedStore {
            readers: Arc::new(readers),
            next_reader: Arc::default(),
            writer,
            commits,
        })
    }

    /// Transactions committed since the store was opened (each holds a group of writes).
    pub fn commits(&self) -> usize {
        self.commits.load(Ordering::Relaxed)
    }

    /// Runs a read on a reader connection.
    async fn run<T, F>(&self, f: F) -> Result<T, StoreError>
    where
        T: Send + 'static,
        F: FnOnce(&Connection) -> Result<T, StoreError> + Send + 'static,
    {
        let readers = self.readers.clone();
        let n = self.next_reader.fetch_add(1, Ordering::Relaxed) % readers.len();
        tokio::task::spawn_blocking(move || {
            let guard = readers[n]
                .lock()
                .map_err(|_| StoreError::Unavailable("embedded store lock poisoned".into()))?;
            f(&guard)
        })
        .await
        .map_err(|e| StoreError::Unavailable(format!("embedded store task: {e}")))?
    }

    /// Runs a write in the writer's next group; answers once the group is committed.
    async fn write<T, F>(&self, f: F) -> Result<T, StoreError>
    where
        T: Send + 'static,
        F: FnOnce(&Connection) -> Result<T, StoreError> + Send + 'static,
    {
        let (reply, answer) = tokio::sync::oneshot::channel();
        let job: WriteJob = Box::new(move |c| f(c).map(|t| Box::new(t) as Box<dyn Any + Send>));
        self.writer
            .send((job, reply))
            .map_err(|_| StoreError::Unavailable("embedded store writer stopped".into()))?;
        let out = answer
            .await
            .map_err(|_| StoreError::Unavailable("embedded store writer stopped".into()))??;
        out.downcast::<T>()
            .map(|b| *b)
            .map_err(|_| StoreError::Invalid("embedded store: unexpected write result".into()))
    }
}

/// A connection to the store's file, waiting up to 5 s for another process's lock.
fn connect(file: &Path) -> Result<Connection, StoreError> {
    let conn = Connection::open(file).map_err(sql)?;
    conn.busy_timeout(Duration::from_secs(5)).map_err(sql)?;
    // Every query the broker makes fits, so none is parsed twice.
    conn.set_prepared_statement_cache_capacity(128);
    // A group's savepoints keep their undo records in memory rather than in a temporary
    // file opened, written and synced for each write; they only serve a rollback inside
    // the open transaction, so durability is the WAL's, unchanged.
    conn.execute_batch("PRAGMA temp_store=MEMORY")
        .map_err(sql)?;
    Ok(conn)
}

/// The writer thread: each turn takes every waiting write (up to [`MAX_GROUP`]) into one
/// transaction, each in a savepoint, commits once, then answers them all. Ends when the
/// store is dropped.
fn commit_groups(conn: Connection, jobs: mpsc::Receiver<(WriteJob, Reply)>, commits: &AtomicUsize) {
    while let Ok(first) = jobs.recv() {
        let mut group = vec![first];
        while group.len() < MAX_GROUP {
            match jobs.try_recv() {
                Ok(job) => group.push(job),
                Err(_) => break,
            }
        }
        if let Err(e) = run_cached(&conn, "BEGIN IMMEDIATE") {
            let e = sql(e);
            for (_, reply) in group {
                let _ = reply.send(Err(e.clone()));
            }
            continue;
        }
        let mut answers = Vec::with_capacity(group.len());
        for (job, reply) in group {
            let outcome = match run_cached(&conn, "SAVEPOINT job") {
                Ok(()) => {
                    // A panicking write must not take the writer (and every later write) down.
                    let outcome =
                        std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| job(&conn)))
                            .unwrap_or_else(|_| {
                                Err(StoreError::Invalid("a write panicked".into()))
                            });
                    // A refused write leaves nothing behind.
                    let end = if outcome.is_err() {
                        run_cached(&conn, "ROLLBACK TO job")
                            .and_then(|()| run_cached(&conn, "RELEASE job"))
                    } else {
                        run_cached(&conn, "RELEASE job")
                    };
                    match end {
                        Ok(()) => outcome,
                        Err(e) => Err(sql(e)),
                    }
                }
                Err(e) => Err(sql(e)),
            };
            answers.push((outcome, reply));
        }
        match run_cached(&conn, "COMMIT") {
            Ok(()) => {
                commits.fetch_add(1, Ordering::Relaxed);
                for (outcome, reply) in answers {
                    let _ = reply.send(outcome);
                }
            }
            Err(e) => {
                let e = sql(e);
                let _ = conn.execute_batch("ROLLBACK");
                for (_, reply) in answers {
                    let _ = reply.send(Err(e.clone()));
                }
            }
        }
    }
}

/// Runs a statement without parameters, prepared once per connection (parsing SQL costs
/// more than running these).
fn run_cached(conn: &Connection, statement: &str) -> rusqlite::Result<()> {
    conn.prepare_cached(statement)?.execute([]).map(|_| ())
}

fn db_exists(conn: &Connection, db: &str) -> Result<bool, StoreError> {
    conn.prepare_cached("SELECT 1 FROM dbs WHERE name = ?1")
        .and_then(|mut stmt| stmt.query_row([db], |_| Ok(())).optional())
        .map(|r| r.is_some())
        .map_err(sql)
}

/// The document as CouchDB returns it: `_id` and `_rev` first, then the body.
fn with_meta(id: &str, rev: &str, body: &str) -> Result<Value, StoreError> {
    let stored: Map<String, Value> =
        serde_json::from_str(body).map_err(|e| StoreError::Invalid(format!("stored body: {e}")))?;
    let mut doc = Map::with_capacity(stored.len() + 2);
    doc.insert("_id".into(), id.into());
    doc.insert("_rev".into(), rev.into());
    doc.extend(stored);
    Ok(Value::Object(doc))
}

fn rev_number(rev: &str) -> u64 {
    rev.split_once('-')
        .and_then(|(n, _)| n.parse().ok())
        .unwrap_or(0)
}

/// Writes one revision (in the writer's transaction), with CouchDB's conflict rules.
fn write_one(
    conn: &Connection,
    db: &str,
    id: &str,
    given_rev: Option<&str>,
    body: Option<&Map<String, Value>>,
) -> Result<String, StoreError> {
    if !db_exists(conn, db)? {
        return Err(StoreError::NoDatabase(db.to_owned()));
    }
    write_in(conn, db, id, given_rev, body)
}

/// A batch: every write in one transaction and one sync; each its own outcome.
type Write = (String, Option<String>, Option<Map<String, Value>>);

fn write_many(
    conn: &Connection,
    db: &str,
    writes: &[Write],
) -> Result<Vec<Result<String, StoreError>>, StoreError> {
    if !db_exists(conn, db)? {
        return Err(StoreError::NoDatabase(db.to_owned()));
    }
    Ok(writes
        .iter()
        .map(|(id, rev, body)| write_in(conn, db, id, rev.as_deref(), body.as_ref()))
        .collect())
}

/// One write inside a transaction; a refused one changes nothing.
fn write_in(
    tx: &Connection,
    db: &str,
    id: &str,
    given_rev: Option<&str>,
    body: Option<&Map<String, Value>>,
) -> Result<String, StoreError> {
    let current: Option<(String, bool)> = tx
        .prepare_cached("SELECT rev, deleted FROM docs WHERE db = ?1 AND id = ?2")
        .and_then(|mut stmt| {
            stmt.query_row(params![db, id], |r| {
                Ok((r.get(0)?, r.get::<_, i64>(1)? != 0))
            })
            .optional()
        })
        .map_err(sql)?;
    let next_number = match (&current, given_rev) {
        (Some((rev, false)), Some(given)) if rev == given => rev_number(rev) + 1,
        (Some((_, false)), _) => return Err(StoreError::Conflict),
        // A deleted or absent document: a delete needs a live one, a write starts anew.
        (_, _) if body.is_none() => return Err(StoreError::Conflict),
        (Some((rev, true)), None) => rev_number(rev) + 1,
        (Some((rev, true)), Some(given)) if rev == given => rev_number(rev) + 1,
        (None, None) => 1,
        _ => return Err(StoreError::Conflict),
    };
    let text = match body {
        Some(b) => serde_json::to_string(b).map_err(|e| StoreError::Invalid(e.to_string()))?,
        None => "{}".to_owned(),
    };
    let rev = format!(
        "{next_number}-{}",
        &sha256_hex(&format!("{}{text}", given_rev.unwrap_or("")))[..32]
    );
    let seq: i64 = tx
        .prepare_cached("SELECT COALESCE(MAX(seq), 0) + 1 FROM docs")
        .and_then(|mut stmt| stmt.query_row([], |r| r.get(0)))
        .map_err(sql)?;
    tx.prepare_cached(
        "INSERT INTO docs (db, id, rev, deleted, body, seq) VALUES (?1, ?2, ?3, ?4, ?5, ?6)
         ON CONFLICT (db, id) DO UPDATE SET rev = ?3, deleted = ?4, body = ?5, seq = ?6",
    )
    .and_then(|mut stmt| stmt.execute(params![db, id, rev, i64::from(body.is_none()), text, seq]))
    .map_err(sql)?;
    Ok(rev)
}

/// A document taken apart: id, rev, and the body that is stored.
struct Parts {
    id: Option<String>,
    rev: Option<String>,
    body: Map<String, Value>,
}

/// Splits a document into its id, its rev and the body to store.
fn split(doc: &Value) -> Result<Parts, StoreError> {
    let mut body = doc
        .as_object()
        .cloned()
        .ok_or_else(|| StoreError::Invalid("document must be an object".into()))?;
    let id = body
        .remove("_id")
        .and_then(|v| v.as_str().map(str::to_owned));
    let rev = body
        .remove("_rev")
        .and_then(|v| v.as_str().map(str::to_owned));
    Ok(Parts { id, rev, body })
}

fn live_docs(conn: &Connection, db: &str) -> Result<Vec<Value>, StoreError> {
    if !db_exists(conn, db)? {
        return Err(StoreError::NoDatabase(db.to_owned()));
    }
    let mut stmt = conn
        .prepare_cached("SELECT id, rev, body FROM docs WHERE db = ?1 AND deleted = 0 ORDER BY id")
        .map_err(sql)?;
    documents(&mut stmt, [db])
}

/// The `(id, rev, body)` rows a statement yields, as documents with `_id` and `_rev`.
fn documents(
    stmt: &mut rusqlite::CachedStatement<'_>,
    params: impl rusqlite::Params,
) -> Result<Vec<Value>, StoreError> {
    let rows = stmt
        .query_map(params, |r| {
            Ok((
                r.get::<_, String>(0)?,
                r.get::<_, String>(1)?,
                r.get::<_, String>(2)?,
            ))
        })
        .map_err(sql)?;
    rows.map(|r| {
        let (id, rev, body) = r.map_err(sql)?;
        with_meta(&id, &rev, &body)
    })
    .collect()
}

#[async_trait]
impl Store for EmbeddedStore {
    async fn ping(&self) -> Result<(), StoreError> {
        self.run(|c| c.query_row("SELECT 1", [], |_| Ok(())).map_err(sql))
            .await
    }

    async fn ensure_db(&self, db: &str) -> Result<(), StoreError> {
        let db = db.to_owned();
        self.write(move |c| {
            c.execute("INSERT OR IGNORE INTO dbs (name) VALUES (?1)", [db])
                .map(|_| ())
                .map_err(sql)
        })
        .await
    }

    async fn get(&self, db: &str, id: &str) -> Result<Option<Value>, StoreError> {
        let (db, id) = (db.to_owned(), id.to_owned());
        self.run(move |c| {
            let row: Option<(String, String)> = c
                .prepare_cached(
                    "SELECT rev, body FROM docs WHERE db = ?1 AND id = ?2 AND deleted = 0",
                )
                .and_then(|mut stmt| {
                    stmt.query_row(params![db, id], |r| Ok((r.get(0)?, r.get(1)?)))
                        .optional()
                })
                .map_err(sql)?;
            row.map(|(rev, body)| with_meta(&id, &rev, &body))
                .transpose()
        })
        .await
    }

    async fn get_many(&self, db: &str, ids: &[String]) -> Result<Vec<Option<Value>>, StoreError> {
        let (db, ids) = (db.to_owned(), ids.to_vec());
        self.run(move |c| {
            let mut stmt = c
                .prepare_cached(
                    "SELECT rev, body FROM docs WHERE db = ?1 AND id = ?2 AND deleted = 0",
                )
                .map_err(sql)?;
            ids.iter()
                .map(|id| {
                    let row: Option<(String, String)> = stmt
                        .query_row(params![db, id], |r| Ok((r.get(0)?, r.get(1)?)))
                        .optional()
                        .map_err(sql)?;
                    row.map(|(rev, body)| with_meta(id, &rev, &body))
                        .transpose()
                })
                .collect()
        })
        .await
    }

    async fn put(&self, db: &str, doc: &Value) -> Result<String, StoreError> {
        let Parts { id, rev, body } = split(doc)?;
        let id = id
            .filter(|i| !i.is_empty())
            .ok_or_else(|| StoreError::Invalid("put needs an _id".into()))?;
        let db = db.to_owned();
        self.write(move |c| write_one(c, &db, &id, rev.as_deref(), Some(&body)))
            .await
    }

    async fn put_many(
        &self,
        db: &str,
        docs: &[Value],
    ) -> Result<Vec<Result<String, StoreError>>, StoreError> {
        let writes = docs
            .iter()
            .map(|d| {
                let Parts { id, rev, body } = split(d)?;
                let id = id
                    .filter(|i| !i.is_empty())
                    .ok_or_else(|| StoreError::Invalid("put needs an _id".into()))?;
                Ok((id, rev, Some(body)))
            })
            .collect::<Result<Vec<Write>, StoreError>>()?;
        let db = db.to_owned();
        self.write(move |c| write_many(c, &db, &writes)).await
    }

    async fn delete_many(&self, db: &str, docs: &[(String, String)]) -> Result<usize, StoreError> {
        let writes: Vec<Write> = docs
            .iter()
            .map(|(id, rev)| (id.clone(), Some(rev.clone()), None))
            .collect();
        let db = db.to_owned();
        let outcomes = self.write(move |c| write_many(c, &db, &writes)).await?;
        Ok(outcomes.iter().filter(|o| o.is_ok()).count())
    }

    async fn purge_deleted(&self, db: &str) -> Result<usize, StoreError> {
        let db = db.to_owned();
        self.write(move |c| {
            c.execute(
                "DELETE FROM docs WHERE db = ?1 AND deleted = 1",
                params![db],
            )
            .map_err(sql)
        })
        .await
    }

    async fn delete(&self, db: &str, id: &str, rev: &str) -> Result<(), StoreError> {
        let (db, id, rev) = (db.to_owned(), id.to_owned(), rev.to_owned());
        self.write(move |c| write_one(c, &db, &id, Some(&rev), None).map(|_| ()))
            .await
    }

    async fn docs_in_range(
        &self,
        db: &str,
        prefix: &str,
        after: Option<&str>,
        limit: usize,
    ) -> Result<Vec<Value>, StoreError> {
        let (db, prefix, after) = (db.to_owned(), prefix.to_owned(), after.map(str::to_owned));
        self.run(move |c| {
            if !db_exists(c, &db)? {
                return Err(StoreError::NoDatabase(db));
            }
            // Text compares bytewise: U+10FFFF's encoding sorts after every character's.
            let end = format!("{prefix}\u{10FFFF}");
            let mut stmt = c
                .prepare_cached(
                    "SELECT id, rev, body FROM docs WHERE db = ?1 AND deleted = 0
                     AND id >= ?2 AND id > ?3 AND id < ?4 ORDER BY id LIMIT ?5",
                )
                .map_err(sql)?;
            documents(
                &mut stmt,
                params![db, prefix, after.unwrap_or_default(), end, limit as i64],
            )
        })
        .await
    }

    async fn all_docs(&self, db: &str) -> Result<Vec<Value>, StoreError> {
        let db = db.to_owned();
        self.run(move |c| live_docs(c, &db)).await
    }

    async fn find(
        &self,
        db: &str,
        selector: &Selector,
        limit: usize,
    ) -> Result<Vec<Value>, StoreError> {
        let (db, selector) = (db.to_owned(), selector.clone());
        self.run(move |c| {
            if !db_exists(c, &db)? {
                return Err(StoreError::NoDatabase(db));
            }
            let mut params: Vec<rusqlite::types::Value> = Vec::new();
            let mut clause = String::new();
            sql_condition(&selector, &mut clause, &mut params);
            params.push((limit as i64).into());
            // The database is written literally: SQLite uses a partial index only when the
            // query's own text implies the index's `WHERE db = '…'`.
            let query = format!(
                "SELECT id, rev, body FROM docs WHERE db = {} AND deleted = 0 AND ({clause}) LIMIT ?{}",
                sql_text(&db),
                params.len()
            );
            let mut stmt = c.prepare_cached(&query).map_err(sql)?;
            let rows = stmt
                .query_map(rusqlite::params_from_iter(params), |r| {
                    Ok((r.get::<_, String>(0)?, r.get::<_, String>(1)?, r.get::<_, String>(2)?))
                })
                .map_err(sql)?;
            let docs: Vec<Value> = rows
                .map(|r| {
                    let (id, rev, body) = r.map_err(sql)?;
                    with_meta(&id, &rev, &body)
                })
                .collect::<Result<_, _>>()?;
            // SQL compares JSON values loosely; the selector has the last word.
            Ok(docs.into_iter().filter(|d| selector.matches(d)).collect())
        })
        .await
    }

    async fn ensure_index(&self, db: &str, field: &str) -> Result<(), StoreError> {
        let path = json_path(field);
        // Partial, one per database: a write to another database neither evaluates the
        // expression nor touches the index, so each write updates only the indexes of
        // its own database. `db` leads all the same, so that the planner, without
        // statistics, prefers this index to `docs_by_seq` for `db = '…' AND expr < ?`.
        let name = format!(
            "docs_{}_by_{}",
            &sha256_hex(db)[..12],
            field.replace('.', "_")
        );
        let (old, db) = (format!("docs_by_{}", field.replace('.', "_")), sql_text(db));
        self.write(move |c| {
            c.execute_batch(&format!(
                "DROP INDEX IF EXISTS \"{old}\";
                 CREATE INDEX IF NOT EXISTS \"{name}\" ON docs (db, json_extract(body, {path})) WHERE db = {db}"
            ))
            .map_err(sql)
        })
        .await
    }

    async fn changes(
        &self,
        db: &str,
        since: &Value,
        wait: Duration,
    ) -> Result<Changes, StoreError> {
        let since_n = match since.as_str() {
            // CouchDB's `since=now`: only what happens from here on.
            Some("now") => {
                self.run(|c| {
                    c.query_row("SELECT COALESCE(MAX(seq), 0) FROM docs", [], |r| r.get(0))
                        .map_err(sql)
                })
                .await?
            }
            _ => since
                .as_i64()
                .or_else(|| since.as_str().and_then(|s| s.parse().ok()))
                .unwrap_or(0),
        };
        let deadline = tokio::time::Instant::now() + wait;
        loop {
            let db_owned = db.to_owned();
            let batch = self
                .run(move |c| {
                    if !db_exists(c, &db_owned)? {
                        return Err(StoreError::NoDatabase(db_owned));
                    }
                    let mut stmt = c
                        .prepare_cached("SELECT id, rev, deleted, body, seq FROM docs WHERE db = ?1 AND seq > ?2 ORDER BY seq")
                        .map_err(sql)?;
                    let rows = stmt
                        .query_map(params![db_owned, since_n], |r| {
                            Ok((
                                r.get::<_, String>(0)?,
                                r.get::<_, String>(1)?,
                                r.get::<_, i64>(2)? != 0,
                                r.get::<_, String>(3)?,
                                r.get::<_, i64>(4)?,
                            ))
                        })
                        .map_err(sql)?;
                    let mut changes = Vec::new();
                    let mut last = since_n;
                    for row in rows {
                        let (id, rev, deleted, body, seq) = row.map_err(sql)?;
                        let doc = if deleted { None } else { Some(with_meta(&id, &rev, &body)?) };
                        changes.push(DocChange { id, doc });
                        last = seq;
                    }
                    Ok((changes, last))
                })
                .await?;
            if !batch.0.is_empty() || tokio::time::Instant::now() >= deadline {
                return Ok(Changes {
                    changes: batch.0,
                    last_seq: Value::from(batch.1),
                });
            }
            tokio::time::sleep(CHANGES_POLL).await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    async fn store() -> (tempfile::TempDir, EmbeddedStore) {
        let dir = tempfile::tempdir().unwrap();
        let s = EmbeddedStore::open(dir.path()).unwrap();
        s.ensure_db("d").await.unwrap();
        (dir, s)
    }

    #[tokio::test]
    async fn writes_waiting_for_the_writer_commit_together_each_with_its_own_outcome() {
        let (_d, s) = store().await;
        let before = s.commits();
        // Hold the writer so the next writes queue up behind it.
        let hold = s.write(|_| {
            std::thread::sleep(Duration::from_millis(300));
            Ok(())
        });
        let queued = async {
            tokio::time::sleep(Duration::from_millis(50)).await;
            let docs: Vec<Value> = (0..100)
                .map(|i| json!({"_id": format!("k{}", i % 90), "i": i}))
                .collect();
            let puts = docs.iter().map(|d| s.put("d", d));
            futures::future::join_all(puts).await
        };
        let (held, outcomes) = tokio::join!(hold, queued);
        held.unwrap();
        // Ten ids were written twice without a rev: one of each pair conflicts.
        let ok = outcomes.iter().filter(|o| o.is_ok()).count();
        let conflicts = outcomes
            .iter()
            .filter(|o| matches!(o, Err(StoreError::Conflict)))
            .count();
        assert_eq!((ok, conflicts), (90, 10));
        assert_eq!(s.commits() - before, 2, "the hold, then one group of 100");
        assert_eq!(s.all_docs("d").await.unwrap().len(), 90);
    }

    #[tokio::test]
    async fn a_failed_write_in_a_group_leaves_nothing_and_the_others_land() {
        let (_d, s) = store().await;
        let failing = s.write(|c| -> Result<(), StoreError> {
            write_one(c, "d", "half-done", None, Some(&Map::new()))?;
            Err(StoreError::Invalid("failed after writing".into()))
        });
        let fine_doc = json!({"_id": "fine"});
        let fine = s.put("d", &fine_doc);
        let (failed, put) = tokio::join!(failing, fine);
        assert!(failed.is_err() && put.is_ok());
        assert!(s.get("d", "half-done").await.unwrap().is_none());
        assert!(s.get("d", "fine").await.unwrap().is_some());
    }

    #[tokio::test]
    async fn an_answered_write_is_on_disk_for_the_next_opening() {
        let dir = tempfile::tempdir().unwrap();
        {
            let s = EmbeddedStore::open(dir.path()).unwrap();
            s.ensure_db("d").await.unwrap();
            s.put("d", &json!({"_id": "kept", "v": 1})).await.unwrap();
        }
        let again = EmbeddedStore::open(dir.path()).unwrap();
        assert_eq!(again.get("d", "kept").await.unwrap().unwrap()["v"], 1);
    }

    #[tokio::test]
    async fn stale_rev_is_a_conflict() {
        let (_d, s) = store().await;
        let r1 = s.put("d", &json!({"_id": "a", "v": 1})).await.unwrap();
        assert!(r1.starts_with("1-"));
        let r2 = s
            .put("d", &json!({"_id": "a", "_rev": r1, "v": 2}))
            .await
            .unwrap();
        assert!(r2.starts_with("2-"));
        assert_eq!(
            s.put("d", &json!({"_id": "a", "_rev": r1, "v": 3})).await,
            Err(StoreError::Conflict)
        );
        assert_eq!(
            s.put("d", &json!({"_id": "a", "v": 3})).await,
            Err(StoreError::Conflict)
        );
        assert_eq!(s.get("d", "a").await.unwrap().unwrap()["v"], 2);
    }

    #[tokio::test]
    async fn missing_database_is_reported() {
        let (_d, s) = store().await;
        assert_eq!(
            s.put("nope", &json!({"_id": "a"})).await,
            Err(StoreError::NoDatabase("nope".into()))
        );
    }

    #[tokio::test]
    async fn deleted_documents_vanish_and_show_in_changes() {
        let (_d, s) = store().await;
        let id = "gone";
        let rev = s.put("d", &json!({"_id": id, "x": 1})).await.unwrap();
        s.delete("d", id, &rev).await.unwrap();
        assert_eq!(s.get("d", id).await.unwrap(), None);
        assert_eq!(s.delete("d", id, &rev).await, Err(StoreError::Conflict));
        let ch = s.changes("d", &json!(0), Duration::ZERO).await.unwrap();
        assert_eq!(ch.changes.len(), 1);
        assert!(ch.changes[0].doc.is_none());
    }

    #[tokio::test]
    async fn finding_due_documents_uses_the_expression_index() {
        let (_d, s) = store().await;
        s.ensure_index("d", "due_at").await.unwrap();
        for i in 0..50 {
            s.put("d", &json!({"_id": format!("a{i}"), "due_at": i}))
                .await
                .unwrap();
        }
        let due = s.find("d", &Selector::Lt("due_at", 10), 100).await.unwrap();
        assert_eq!(due.len(), 10);
        let plan: String = s
            .run(|c| {
                let mut stmt = c
                    .prepare("EXPLAIN QUERY PLAN SELECT id FROM docs WHERE db = 'd' AND deleted = 0 AND (json_extract(body, '$.due_at') < 10)")
                    .map_err(sql)?;
                let rows = stmt.query_map([], |r| r.get::<_, String>(3)).map_err(sql)?;
                Ok(rows.filter_map(Result::ok).collect::<Vec<_>>().join(" "))
            })
            .await
            .unwrap();
        assert!(plan.contains("_by_due_at"), "{plan}");
    }

    #[tokio::test]
    async fn documents_survive_reopening() {
        let dir = tempfile::tempdir().unwrap();
        {
            let s = EmbeddedStore::open(dir.path()).unwrap();
            s.ensure_db("d").await.unwrap();
            s.put("d", &json!({"_id": "k", "v": "kept"})).await.unwrap();
        }
        let s = EmbeddedStore::open(dir.path()).unwrap();
        assert_eq!(s.get("d", "k").await.unwrap().unwrap()["v"], "kept");
    }
}
