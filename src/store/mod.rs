//! All SQL lives here. `Store` is the one interface the rest of Airlock uses; it is backed by SQLite
//! today and chosen by the database URL's scheme, so a PostgreSQL backend can be added beside it
//! (`migrations/postgres`, portable `$1` placeholders) without touching callers.
//! Migrations run at start-up; times are stored as RFC 3339 UTC text.

mod agents;
mod calls;
mod users;

use std::str::FromStr;
use std::time::Duration;

use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions};

pub use agents::Agent;
pub use calls::{Actor, ApprovalRow, CallRow, EventRow, NewCall, ResultSummary, Vote};
pub use users::{Role, User};

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
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

/// A handle on the database; cheap to clone.
#[derive(Clone, Debug)]
pub struct Store {
    pool: SqlitePool,
}

impl Store {
    /// Opens (creating if needed) the database at `url` and runs pending migrations.
    pub async fn connect(url: &str) -> Result<Self, StoreError> {
        let open = |source| StoreError::Open {
            url: url.to_owned(),
            source,
        };
        let options = SqliteConnectOptions::from_str(url)
            .map_err(open)?
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            .busy_timeout(Duration::from_secs(5))
            .foreign_keys(true);
        let pool = SqlitePoolOptions::new()
            .max_connections(8)
            .connect_with(options)
            .await
            .map_err(open)?;
        sqlx::migrate!("migrations/sqlite")
            .run(&pool)
            .await
            .map_err(|source| StoreError::Migrate {
                url: url.to_owned(),
                source,
            })?;
        Ok(Self { pool })
    }

    /// Readiness probe: the database answers a trivial query.
    pub async fn ping(&self) -> Result<(), StoreError> {
        sqlx::query("SELECT 1")
            .execute(&self.pool)
            .await
            .map(|_| ())
            .map_err(query("ping"))
    }
}

fn query(context: &'static str) -> impl FnOnce(sqlx::Error) -> StoreError {
    move |source| StoreError::Query { context, source }
}

fn now_rfc3339() -> String {
    timestamp(time::OffsetDateTime::now_utc())
}

/// Times are stored as RFC 3339 UTC text with exactly three fractional digits, so that comparing
/// them as text (`expires_at < $1`) orders them as times.
pub fn timestamp(at: time::OffsetDateTime) -> String {
    const FORMAT: &[time::format_description::BorrowedFormatItem<'static>] = time::macros::format_description!(
        "[year]-[month]-[day]T[hour]:[minute]:[second].[subsecond digits:3]Z"
    );
    at.to_offset(time::UtcOffset::UTC)
        .format(FORMAT)
        .unwrap_or_default()
}
