//! All SQL lives here. `Store` is the one interface the rest of Airlock uses. The backend is chosen
//! by the database URL's scheme: SQLite (`sqlite://PATH`, the default, embedded) or PostgreSQL
//! (`postgres://…`, shared by several Airlock instances). Both run through sqlx's `Any` driver, so
//! each query is written once, in portable SQL with `$1` placeholders; the few places where the
//! engines differ (taking a write lock first) branch on [`Backend`]. Each backend has its own
//! migrations (`migrations/sqlite`, `migrations/postgres`), run at start-up; on PostgreSQL sqlx
//! holds an advisory lock while migrating, so instances starting together do not race.
//!
//! Portable types only: text, 64-bit integers (flags are 0/1), and times as RFC 3339 UTC text of a
//! fixed width ([`crate::domain::Timestamp`]), so they compare correctly as text on both engines.
//! The store depends on `config` and `domain` only: it knows rows, not what the queue, the audit
//! log or the mail do with them.

mod agents;
mod audit;
mod call_queries;
mod calls;
mod counters;
mod instances;
mod links;
mod outbox;
mod passwords;
mod pins;
mod rate_slots;
mod sessions;
mod tasks;
mod transitions;
mod users;

use std::sync::Arc;
use std::time::Duration;

use sqlx::AnyPool;
use sqlx::any::AnyPoolOptions;
use sqlx::{Executor, Transaction};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

pub use agents::Agent;
pub use audit::{AuditBounds, AuditFilter, AuditOrder, NewAuditEvent};
pub use call_queries::{CallFilter, HistorySlice};
pub use calls::{ApprovalRow, CallRow, EventRow, NewCall, Parking, QueueLimits, ResultSummary};
pub use counters::CounterStep;
pub use instances::{Holder, InstanceRow};
pub use links::{Followup, NewReviewLink, ReviewLinkRow};
pub use outbox::{ClaimedMail, DIGEST_PENDING_BODY, MailPurpose, MailRow, NewMail, StoredMail};
pub use pins::{PinRow, SeenTool};
pub use sessions::BrowserSession;
pub use tasks::TaskRow;
pub use transitions::{DecisionRecord, Outcome, Vote};
pub use users::{Role, TokenListing, User, UserListing};

pub use crate::config::Backend;
use crate::config::{DatabaseConfig, redact_url};
use crate::domain::CallId;

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error(
        "unsupported database URL {url}; use sqlite://PATH or postgres://USER:PASSWORD@HOST/DB"
    )]
    Scheme { url: String },
    #[error("cannot open database {url}")]
    Open {
        url: String,
        #[source]
        source: sqlx::Error,
    },
    #[error("cannot migrate database {url}")]
    Migrate {
        url: String,
        #[source]
        source: sqlx::migrate::MigrateError,
    },
    #[error("database query failed: {context}")]
    Query {
        context: &'static str,
        #[source]
        source: sqlx::Error,
    },
}

impl StoreError {
    /// Whether the database answered and refused the statement (a constraint, a value it cannot
    /// hold), rather than being unreachable or busy.
    pub fn is_refusal(&self) -> bool {
        matches!(
            self,
            Self::Query {
                source: sqlx::Error::Database(_),
                ..
            }
        )
    }
}

/// A handle on the database; cheap to clone.
#[derive(Clone)]
pub struct Store {
    pool: AnyPool,
    backend: Backend,
    /// The URL, for the PostgreSQL notification listener's own connection.
    url: String,
    /// SQLite: the one write transaction this process may have open at a time (shared with the
    /// audit writer's connection). Writers wait their turn here, in order, and start the moment
    /// the one before commits; meeting SQLite's lock instead, a writer sleeps in its busy
    /// handler (1, 2, 5, 10 ms ...), which showed as the tail of decision → result under load
    /// (`benches/parked.rs`). Other processes (the CLI, a second instance) still meet the lock.
    write_turn: Option<Arc<Semaphore>>,
}

/// The URL may carry a password: `Debug` shows it redacted.
impl std::fmt::Debug for Store {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Store")
            .field("backend", &self.backend)
            .field("url", &redact_url(&self.url))
            .finish()
    }
}

/// What every SQLite connection runs first. secure_delete: freed space is zeroed, so a call's
/// scrubbed arguments do not linger in the file (see `redact`). cache_size: 256 KiB of pages
/// each (SQLite's default is 2 MiB), so the pool's connections, which each cache the same hot
/// pages, hold about a MiB in all however large the file grows; the system's file cache keeps
/// the rest close (a page read from it is a `pread`, not a disk read). With 1,000 requests held
/// open, 512 KiB each held a MiB more (`benches/parked.rs`), and 256 KiB left the dashboard's
/// pages at 1,000,000 calls as fast (`benches/dashboard.rs`).
const SQLITE_PRAGMAS: &str = "PRAGMA busy_timeout = 5000; PRAGMA foreign_keys = ON; \
     PRAGMA secure_delete = ON; PRAGMA cache_size = -256;";

/// The audit writer's own connection (see [`Store::for_batches`]) commits without waiting for
/// the disk, and keeps its statement journals in memory: each multi-row INSERT in a
/// transaction journals the pages it changes, which spilled past 64 KiB into a file created
/// and deleted in the temporary folder for every batch (5% of Airlock's CPU at 32 agents in
/// `benches/proxy.rs`). Only this connection: elsewhere a large sort may need the file.
const BATCH_PRAGMAS: &str = "PRAGMA synchronous = NORMAL; PRAGMA temp_store = MEMORY;";

/// The PostgreSQL channel on which decisions are announced (payload: the call's id).
const DECISIONS_CHANNEL: &str = "airlock_decisions";

type Tx = Transaction<'static, sqlx::Any>;

/// This process's turn to write (see `Store::write_turn`), held until the transaction it began
/// is over: bind it (`let (_turn, mut tx) = ...`) so it lives as long as the transaction.
struct WriteTurn {
    _permit: Option<OwnedSemaphorePermit>,
}

/// How long a writer waits for its turn, as long as SQLite's own `busy_timeout`.
const BUSY_TIMEOUT: Duration = Duration::from_secs(5);

impl Store {
    /// Opens the database at `url` with default pool settings and runs pending migrations.
    pub async fn connect(url: &str) -> Result<Self, StoreError> {
        Self::open(&DatabaseConfig {
            url: url.to_owned(),
            ..DatabaseConfig::default()
        })
        .await
    }

    /// Opens (creating a SQLite file if needed) the configured database and runs pending
    /// migrations.
    pub async fn open(config: &DatabaseConfig) -> Result<Self, StoreError> {
        sqlx::any::install_default_drivers();
        let shown = redact_url(&config.url);
        let backend = Backend::of_url(&config.url)
            .ok_or_else(|| StoreError::Scheme { url: shown.clone() })?;
        let open = |source| StoreError::Open {
            url: shown.clone(),
            source,
        };
        let options = AnyPoolOptions::new()
            .max_connections(config.pool_size())
            .acquire_timeout(Duration::from_secs(config.acquire_timeout));
        let pool = match backend {
            Backend::Sqlite => {
                if let Some(path) = sqlite_path(&config.url) {
                    create_private(&path).map_err(|e| open(sqlx::Error::Io(e)))?;
                }
                let pool = options
                    .after_connect(|conn, _| {
                        Box::pin(async move { conn.execute(SQLITE_PRAGMAS).await.map(|_| ()) })
                    })
                    .connect(&sqlite_url(&config.url))
                    .await
                    .map_err(open)?;
                // WAL lets readers and the one writer proceed together; it is a property of the
                // file, so setting it once is enough.
                sqlx::query("PRAGMA journal_mode = WAL")
                    .execute(&pool)
                    .await
                    .map_err(open)?;
                pool
            }
            Backend::Postgres => options.connect(&config.url).await.map_err(open)?,
        };
        let migrated = match backend {
            Backend::Sqlite => sqlx::migrate!("migrations/sqlite").run(&pool).await,
            Backend::Postgres => sqlx::migrate!("migrations/postgres").run(&pool).await,
        };
        migrated.map_err(|source| StoreError::Migrate {
            url: shown.clone(),
            source,
        })?;
        Ok(Self {
            pool,
            backend,
            url: config.url.clone(),
            write_turn: (backend == Backend::Sqlite).then(|| Arc::new(Semaphore::new(1))),
        })
    }

    pub fn backend(&self) -> Backend {
        self.backend
    }

    /// A handle on the same database for the audit writer's batches. On SQLite it is a
    /// connection of its own (its page cache stays warm, its statements prepared) that commits
    /// without waiting for the disk (`synchronous = NORMAL`): the WAL is written before the
    /// commit returns, so Airlock crashing loses nothing committed, while the machine crashing
    /// may lose the last batches, as it loses the events still queued. Everything else (a
    /// parked call's events commit with the change) keeps `FULL`, and a later `FULL` commit
    /// makes the batches before it durable too. On PostgreSQL, and on an in-memory SQLite
    /// database (which a second connection would not see), the same pool. (Its statement
    /// journals are kept in memory: see [`BATCH_PRAGMAS`].)
    pub fn for_batches(&self) -> Result<Store, StoreError> {
        if self.backend != Backend::Sqlite || sqlite_path(&self.url).is_none() {
            return Ok(self.clone());
        }
        let pool = AnyPoolOptions::new()
            .max_connections(1)
            .after_connect(|conn, _| {
                Box::pin(async move {
                    conn.execute(SQLITE_PRAGMAS).await?;
                    conn.execute(BATCH_PRAGMAS).await.map(|_| ())
                })
            })
            .connect_lazy(&sqlite_url(&self.url))
            .map_err(|source| StoreError::Open {
                url: redact_url(&self.url),
                source,
            })?;
        Ok(Self {
            pool,
            backend: self.backend,
            url: self.url.clone(),
            write_turn: self.write_turn.clone(),
        })
    }

    /// On PostgreSQL, a listener for decisions made by any instance (or the CLI), so the instance
    /// holding the call wakes at once; `None` on SQLite, where the poll does the job.
    pub async fn decision_listener(&self) -> Result<Option<DecisionListener>, StoreError> {
        if self.backend != Backend::Postgres {
            return Ok(None);
        }
        let open = |source| StoreError::Open {
            url: redact_url(&self.url),
            source,
        };
        let mut listener = sqlx::postgres::PgListener::connect(&self.url)
            .await
            .map_err(open)?;
        listener.listen(DECISIONS_CHANNEL).await.map_err(open)?;
        Ok(Some(DecisionListener(listener)))
    }

    /// Readiness probe: the database answers a trivial query.
    pub async fn ping(&self) -> Result<(), StoreError> {
        sqlx::query("SELECT 1")
            .execute(&self.pool)
            .await
            .map(|_| ())
            .map_err(query("ping"))
    }

    /// SQLite: copies the write-ahead log into the database file and empties it, so no old page
    /// versions stay in it. (Nothing to do on PostgreSQL.)
    pub async fn truncate_wal(&self) -> Result<(), StoreError> {
        if self.backend == Backend::Sqlite {
            sqlx::query("PRAGMA wal_checkpoint(TRUNCATE)")
                .execute(&self.pool)
                .await
                .map_err(query("checkpoint the WAL"))?;
        }
        Ok(())
    }

    /// Starts a transaction that writes. On SQLite it takes the write lock at once (`BEGIN
    /// IMMEDIATE`), so two writers queue up instead of both reading and then failing to upgrade;
    /// on PostgreSQL the queries lock the rows they change (`FOR UPDATE`).
    async fn begin_write(&self) -> Result<(WriteTurn, Tx), StoreError> {
        let turn = match &self.write_turn {
            Some(turn) => Some(
                tokio::time::timeout(BUSY_TIMEOUT, turn.clone().acquire_owned())
                    .await
                    .ok()
                    .and_then(Result::ok)
                    .ok_or_else(|| StoreError::Query {
                        context: "wait for the write lock",
                        source: sqlx::Error::PoolTimedOut,
                    })?,
            ),
            None => None,
        };
        let tx = match self.backend {
            Backend::Sqlite => self.pool.begin_with("BEGIN IMMEDIATE").await,
            Backend::Postgres => self.pool.begin().await,
        }
        .map_err(query("begin write"))?;
        Ok((WriteTurn { _permit: turn }, tx))
    }
}

/// Decisions announced on PostgreSQL; see [`Store::decision_listener`].
pub struct DecisionListener(sqlx::postgres::PgListener);

impl DecisionListener {
    /// The id of the next call decided anywhere. After a lost connection it reconnects (and
    /// returns the error once: decisions made meanwhile are caught by the poll).
    pub async fn next(&mut self) -> Result<String, StoreError> {
        self.0
            .recv()
            .await
            .map(|n| n.payload().to_owned())
            .map_err(query("receive a decision notification"))
    }
}

/// Announces, on PostgreSQL, that call `id` was decided; delivered when `tx` commits.
async fn announce_decision(backend: Backend, tx: &mut Tx, id: &CallId) -> Result<(), StoreError> {
    if backend == Backend::Postgres {
        sqlx::query("SELECT pg_notify($1, $2)")
            .bind(DECISIONS_CHANNEL)
            .bind(id.as_str())
            .execute(&mut **tx)
            .await
            .map_err(query("announce a decision"))?;
    }
    Ok(())
}

/// The file a `sqlite:` URL names (`None` for an in-memory database).
pub fn sqlite_path(url: &str) -> Option<std::path::PathBuf> {
    let rest = url
        .strip_prefix("sqlite://")
        .or_else(|| url.strip_prefix("sqlite:"))?;
    let path = rest.split('?').next().unwrap_or_default();
    (!path.is_empty() && !path.starts_with(":memory:")).then(|| std::path::PathBuf::from(path))
}

/// Creates an empty database file readable by its owner only (0600), unless it exists. SQLite
/// gives its `-wal` and `-shm` files the database file's mode, so they are private too: the
/// files hold the queue, every call's arguments while they wait, and the audit log.
fn create_private(path: &std::path::Path) -> std::io::Result<()> {
    use std::os::unix::fs::OpenOptionsExt as _;
    match std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
    {
        Ok(_) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => Ok(()),
        Err(e) => Err(e),
    }
}

/// What is wrong with who may read a SQLite database: the file, its `-wal` and `-shm`, and the
/// folder holding them, each when others than its owner may read (or enter) it. `airlock check`
/// prints these; `serve` logs them.
pub fn permission_warnings(url: &str) -> Vec<String> {
    use std::os::unix::fs::PermissionsExt as _;
    let Some(path) = sqlite_path(url) else {
        return Vec::new();
    };
    let mut warnings = Vec::new();
    let mut files = vec![path.clone()];
    for suffix in ["-wal", "-shm"] {
        let mut name = path.clone().into_os_string();
        name.push(suffix);
        files.push(name.into());
    }
    for file in files {
        if let Ok(meta) = std::fs::metadata(&file)
            && meta.permissions().mode() & 0o077 != 0
        {
            warnings.push(format!(
                "{} can be read by other users (mode {:o}); it holds waiting calls' arguments and the audit log: chmod 600 {}",
                file.display(),
                meta.permissions().mode() & 0o777,
                file.display()
            ));
        }
    }
    let folder = match path.parent() {
        Some(parent) if !parent.as_os_str().is_empty() => parent.to_owned(),
        _ => std::path::PathBuf::from("."),
    };
    let folder = std::fs::canonicalize(&folder).unwrap_or(folder);
    if let Ok(meta) = std::fs::metadata(&folder)
        && meta.permissions().mode() & 0o077 != 0
    {
        warnings.push(format!(
            "the folder {} holding the database is open to other users (mode {:o}): chmod 700 {} (or move the database into a private folder)",
            folder.display(),
            meta.permissions().mode() & 0o777,
            folder.display()
        ));
    }
    warnings
}

/// A SQLite URL that creates the file when it is missing.
fn sqlite_url(url: &str) -> String {
    if url.contains("mode=") || url.contains(":memory:") {
        url.to_owned()
    } else if url.contains('?') {
        format!("{url}&mode=rwc")
    } else {
        format!("{url}?mode=rwc")
    }
}

fn query(context: &'static str) -> impl FnOnce(sqlx::Error) -> StoreError {
    move |source| StoreError::Query { context, source }
}
