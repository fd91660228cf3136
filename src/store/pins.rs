//! Tool pins: the accepted and the latest seen definition of each upstream tool (see the
//! migration `0015_tool_pins`). Writes are single statements, so two instances seeing the same
//! list at once cannot lose either's row.

use sqlx::FromRow;

use super::{Store, StoreError, query};
use crate::domain::Timestamp;

/// One tool's pin as stored.
#[derive(Debug, Clone, FromRow, PartialEq, Eq)]
pub struct PinRow {
    pub upstream: String,
    pub tool: String,
    pub accepted_digest: Option<String>,
    pub accepted_definition: Option<String>,
    pub accepted_at: Option<Timestamp>,
    pub accepted_by: Option<String>,
    pub seen_digest: String,
    pub seen_definition: String,
    pub seen_at: Timestamp,
}

impl PinRow {
    /// Whether the latest definition seen is not the accepted one.
    pub fn quarantined(&self) -> bool {
        self.accepted_digest.as_deref() != Some(self.seen_digest.as_str())
    }
}

/// A definition seen in a `tools/list` answer.
pub struct SeenTool<'a> {
    pub upstream: &'a str,
    pub tool: &'a str,
    pub digest: &'a str,
    pub definition: &'a str,
    /// Accept it as it is if the tool has no pin yet (the first list, or `new_tools = "allow"`).
    pub accept_if_new: bool,
}

/// The columns of a [`PinRow`], in its order.
macro_rules! pin_columns {
    () => {
        "upstream, tool, accepted_digest, accepted_definition, accepted_at, accepted_by, \
         seen_digest, seen_definition, seen_at"
    };
}

impl Store {
    /// Every pin, by upstream and tool.
    pub async fn pins(&self) -> Result<Vec<PinRow>, StoreError> {
        sqlx::query_as(concat!(
            "SELECT ",
            pin_columns!(),
            " FROM tool_pins ORDER BY upstream, tool"
        ))
        .fetch_all(&self.pool)
        .await
        .map_err(query("read the tool pins"))
    }

    /// Notes a definition as seen: a new pin (accepted when `accept_if_new`), or the latest seen
    /// definition of an existing one. Returns the pin as it now stands.
    pub async fn see_tool(&self, seen: &SeenTool<'_>) -> Result<PinRow, StoreError> {
        let now = Timestamp::now();
        let accepted = seen.accept_if_new.then_some(seen.digest);
        let accepted_definition = seen.accept_if_new.then_some(seen.definition);
        sqlx::query(
            "INSERT INTO tool_pins (upstream, tool, accepted_digest, accepted_definition, \
             accepted_at, accepted_by, seen_digest, seen_definition, seen_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9) \
             ON CONFLICT (upstream, tool) DO UPDATE SET seen_digest = $7, seen_definition = $8, \
             seen_at = $9 WHERE tool_pins.seen_digest <> $7",
        )
        .bind(seen.upstream)
        .bind(seen.tool)
        .bind(accepted)
        .bind(accepted_definition)
        .bind(seen.accept_if_new.then_some(now))
        .bind(seen.accept_if_new.then_some("first seen"))
        .bind(seen.digest)
        .bind(seen.definition)
        .bind(now)
        .execute(&self.pool)
        .await
        .map_err(query("note a tool definition"))?;
        sqlx::query_as(concat!(
            "SELECT ",
            pin_columns!(),
            " FROM tool_pins WHERE upstream = $1 AND tool = $2"
        ))
        .bind(seen.upstream)
        .bind(seen.tool)
        .fetch_one(&self.pool)
        .await
        .map_err(query("read back a tool pin"))
    }

    /// Accepts the latest definition seen of `upstream.tool`, if it is still the one with
    /// `digest` (the one the admin reviewed). False when it is not (or there is no such tool).
    pub async fn accept_tool(
        &self,
        upstream: &str,
        tool: &str,
        digest: &str,
        by: &str,
    ) -> Result<bool, StoreError> {
        let done = sqlx::query(
            "UPDATE tool_pins SET accepted_digest = seen_digest, \
             accepted_definition = seen_definition, accepted_at = $1, accepted_by = $2 \
             WHERE upstream = $3 AND tool = $4 AND seen_digest = $5",
        )
        .bind(Timestamp::now())
        .bind(by)
        .bind(upstream)
        .bind(tool)
        .bind(digest)
        .execute(&self.pool)
        .await
        .map_err(query("accept a tool definition"))?;
        Ok(done.rows_affected() == 1)
    }
}
