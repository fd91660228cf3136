//! What the history page and the sweeps ask of the calls table: filtered keyset pages, daily
//! counts, calls past their expiry or left behind by a dead instance, and the masking of calls
//! stored before masked copies existed.

use std::collections::HashMap;

use super::calls::{open_statuses, select_calls};
use super::{ApprovalRow, CallRow, Store, StoreError, query};
use crate::domain::{CallId, CallStatus, Timestamp};

/// How many ids one `IN (...)` query carries (SQLite allows 32766 parameters; stay far below).
const IDS_PER_QUERY: usize = 500;

/// How far a call's creation time may be from the time in its id (both read from the clock
/// within the same moment; the margin only widens the id range the exact time filter narrows).
const ID_CLOCK_MARGIN: time::Duration = time::Duration::hours(1);

/// The smallest UUIDv7 made at `at` moved by `shift`, as ids are spelled.
fn id_floor(at: Timestamp, shift: time::Duration) -> String {
    let moved = at.get().checked_add(shift).unwrap_or(at.get());
    let ms = (moved.unix_timestamp_nanos() / 1_000_000).max(0);
    let ms = u64::try_from(ms).unwrap_or(0) & 0xffff_ffff_ffff;
    format!(
        "{:08x}-{:04x}-0000-0000-000000000000",
        ms >> 16,
        ms & 0xffff
    )
}

/// Values bound to a statement built in pieces.
#[derive(Default)]
struct Binds(Vec<String>);

impl Binds {
    /// Binds `value`; its numbered placeholder.
    fn add(&mut self, value: String) -> String {
        self.0.push(value);
        format!("${}", self.0.len())
    }

    /// The placeholder after the last bound.
    fn after(&self) -> String {
        format!("${}", self.0.len() + 1)
    }
}

/// `$1, $2, ... $n`: the placeholders of an `IN (...)` list of `n` bound values. Only these are
/// formatted into the SQL; the values themselves are bound. (sqlx's QueryBuilder writes `?` for
/// the Any driver, which PostgreSQL rejects.)
fn numbered(n: usize) -> String {
    (1..=n)
        .map(|i| format!("${i}"))
        .collect::<Vec<_>>()
        .join(", ")
}

/// `WHERE` and the conditions joined by `AND`, or nothing without any.
fn where_all(conditions: &[String]) -> String {
    if conditions.is_empty() {
        String::new()
    } else {
        format!("WHERE {} ", conditions.join(" AND "))
    }
}

/// One page of [`Store::history`]: its calls, and the `before` that continues it, if anything
/// may be left.
#[derive(Debug)]
pub struct HistorySlice {
    pub rows: Vec<CallRow>,
    pub next: Option<String>,
}

/// What the history page filters calls by; `None` fields do not filter.
#[derive(Debug, Clone, Default)]
pub struct CallFilter {
    pub status: Option<CallStatus>,
    pub upstream: Option<String>,
    pub tool: Option<String>,
    pub agent: Option<String>,
    /// Decided by, or approved by, this reviewer.
    pub reviewer: Option<String>,
    pub since: Option<Timestamp>,
    pub until: Option<Timestamp>,
    /// Text anywhere in the arguments as stored.
    pub text: Option<String>,
}

impl Store {
    /// Calls matching `filter`, newest first, `limit` at a time after the id `before` (keyset
    /// pages: each page is one index range, however deep). Only the given filters become SQL, so
    /// the planner can use the index of the one that narrows most; a time range also bounds the
    /// ids (UUIDv7s carry their creation time), so it is an index range too.
    ///
    /// The text and reviewer filters have no index: with `scan`, they are checked on the next
    /// `scan` calls that pass the other filters, and no further, so a search for something rare
    /// costs one bounded scan a page rather than the whole table (without, as an export reads
    /// everything anyway, on every call). The slice's `next` says where to go on:
    /// after its last row when it is full, after the last call scanned when the scan ended
    /// first (the page then holds fewer rows, possibly none, and more may match further down).
    pub async fn history(
        &self,
        filter: &CallFilter,
        before: Option<&str>,
        limit: u32,
        scan: Option<u32>,
    ) -> Result<HistorySlice, StoreError> {
        let mut binds = Binds::default();
        let mut indexed: Vec<String> = Vec::new();
        if let Some(status) = filter.status {
            indexed.push(format!(
                "status = {}",
                binds.add(status.as_str().to_owned())
            ));
        }
        for (column, value) in [
            ("upstream", &filter.upstream),
            ("tool", &filter.tool),
            ("agent", &filter.agent),
        ] {
            if let Some(value) = value {
                indexed.push(format!("{column} = {}", binds.add(value.clone())));
            }
        }
        if let Some(since) = filter.since {
            indexed.push(format!("created_at >= {}", binds.add(since.text())));
            indexed.push(format!(
                "id >= {}",
                binds.add(id_floor(since, -ID_CLOCK_MARGIN))
            ));
        }
        if let Some(until) = filter.until {
            indexed.push(format!("created_at < {}", binds.add(until.text())));
            indexed.push(format!(
                "id < {}",
                binds.add(id_floor(until, ID_CLOCK_MARGIN))
            ));
        }
        if let Some(before) = before {
            indexed.push(format!("id < {}", binds.add(before.to_owned())));
        }
        // With filters that have no index, first where the scan ends: the `scan`-th call that
        // passes the others (found in an index, the table unread), if there are that many.
        // (Found before those filters bind their values, so this query binds only its own.)
        let unindexed = filter.reviewer.is_some() || filter.text.is_some();
        let mut scan_end = None;
        if let Some(scan) = scan.filter(|_| unindexed) {
            let mut end_query =
                sqlx::query_as::<_, (i64, Option<String>)>(sqlx::AssertSqlSafe(format!(
                    "SELECT COUNT(*), MIN(id) FROM (SELECT id FROM tool_calls {}\
                     ORDER BY id DESC LIMIT {}) AS scanned",
                    where_all(&indexed),
                    binds.after()
                )));
            for value in &binds.0 {
                end_query = end_query.bind(value.clone());
            }
            let (seen, last) = end_query
                .bind(i64::from(scan))
                .fetch_one(&self.pool)
                .await
                .map_err(query("find the end of a history scan"))?;
            scan_end = last.filter(|_| seen == i64::from(scan));
            if let Some(end) = &scan_end {
                indexed.push(format!("id >= {}", binds.add(end.clone())));
            }
        }
        let mut scanned: Vec<String> = Vec::new();
        if let Some(reviewer) = &filter.reviewer {
            let (by, voted) = (
                binds.add(reviewer.to_lowercase()),
                binds.add(reviewer.to_lowercase()),
            );
            scanned.push(format!(
                "(decided_by = {by} OR EXISTS (SELECT 1 FROM call_approvals \
                 WHERE call_approvals.call_id = tool_calls.id AND reviewer = {voted}))"
            ));
        }
        if let Some(text) = &filter.text {
            let escaped = text
                .replace('\\', "\\\\")
                .replace('%', "\\%")
                .replace('_', "\\_");
            scanned.push(format!(
                "COALESCE(args_shown, args_json) LIKE {} ESCAPE '\\'",
                binds.add(format!("%{escaped}%"))
            ));
        }
        let sql = format!(
            "{}{}ORDER BY id DESC LIMIT {}",
            select_calls!(""),
            where_all(&[indexed, scanned].concat()),
            binds.after()
        );
        let mut rows_query = sqlx::query_as::<_, CallRow>(sqlx::AssertSqlSafe(sql));
        for value in binds.0 {
            rows_query = rows_query.bind(value);
        }
        let rows = rows_query
            .bind(i64::from(limit))
            .fetch_all(&self.pool)
            .await
            .map_err(query("select history"))?;
        let next = if rows.len() == limit as usize {
            rows.last().map(|row| row.id.to_string())
        } else {
            scan_end
        };
        Ok(HistorySlice { rows, next })
    }

    /// How many calls were decided each day from `since` until before `until` (`YYYY-MM-DD` in
    /// UTC), by status: a range of the (decided_at, status) index, the table itself unread.
    pub async fn decisions_per_day(
        &self,
        since: Timestamp,
        until: Timestamp,
    ) -> Result<Vec<(String, CallStatus, i64)>, StoreError> {
        sqlx::query_as(
            "SELECT substr(decided_at, 1, 10) AS day, status, COUNT(*) FROM tool_calls \
             WHERE decided_at >= $1 AND decided_at < $2 GROUP BY substr(decided_at, 1, 10), status",
        )
        .bind(since)
        .bind(until)
        .fetch_all(&self.pool)
        .await
        .map_err(query("count decisions per day"))
    }

    /// Up to `limit` calls stored before `args_shown` existed, with ids after `after`, in id
    /// order: (id, args_json).
    pub async fn calls_without_shown_args(
        &self,
        after: &str,
        limit: u32,
    ) -> Result<Vec<(CallId, String)>, StoreError> {
        sqlx::query_as(
            "SELECT id, args_json FROM tool_calls WHERE id > $1 AND args_shown IS NULL \
             ORDER BY id LIMIT $2",
        )
        .bind(after)
        .bind(i64::from(limit))
        .fetch_all(&self.pool)
        .await
        .map_err(query("select calls without masked arguments"))
    }

    /// Stores a call's masked arguments; for a call that is over they also replace the real ones.
    pub async fn set_shown_args(&self, id: &CallId, shown: &str) -> Result<(), StoreError> {
        sqlx::query(sqlx::AssertSqlSafe(format!(
            "UPDATE tool_calls SET args_shown = $1, args_json = CASE WHEN status IN ({}) \
                 THEN args_json ELSE $1 END WHERE id = $2",
            open_statuses()
        )))
        .bind(shown)
        .bind(id)
        .execute(&self.pool)
        .await
        .map_err(query("store masked arguments"))?;
        Ok(())
    }

    /// The approvals of each of `ids`, oldest first; calls with none are left out. One query a
    /// few hundred calls, where a list asking call by call made a page of 100 cost 100 queries.
    pub async fn approvals_of(
        &self,
        ids: &[CallId],
    ) -> Result<HashMap<CallId, Vec<ApprovalRow>>, StoreError> {
        let mut approvals: HashMap<CallId, Vec<ApprovalRow>> = HashMap::new();
        for chunk in ids.chunks(IDS_PER_QUERY) {
            let sql = format!(
                "SELECT call_id, reviewer, via, reason, at FROM call_approvals \
                 WHERE call_id IN ({}) ORDER BY call_id, at",
                numbered(chunk.len())
            );
            let mut q = sqlx::query_as::<_, (CallId, String, String, Option<String>, Timestamp)>(
                sqlx::AssertSqlSafe(sql),
            );
            for id in chunk {
                q = q.bind(id);
            }
            let rows = q
                .fetch_all(&self.pool)
                .await
                .map_err(query("select approvals"))?;
            for (id, reviewer, via, reason, at) in rows {
                approvals.entry(id).or_default().push(ApprovalRow {
                    reviewer,
                    via,
                    reason,
                    at,
                });
            }
        }
        Ok(approvals)
    }

    /// The statuses of those of `ids` that are no longer pending.
    pub async fn decided_among(&self, ids: &[CallId]) -> Result<Vec<CallId>, StoreError> {
        let mut decided = Vec::new();
        for chunk in ids.chunks(IDS_PER_QUERY) {
            let sql = format!(
                "SELECT id FROM tool_calls WHERE status <> 'pending' AND id IN ({})",
                numbered(chunk.len())
            );
            let mut q = sqlx::query_as::<_, (CallId,)>(sqlx::AssertSqlSafe(sql));
            for id in chunk {
                q = q.bind(id);
            }
            let rows = q
                .fetch_all(&self.pool)
                .await
                .map_err(query("select decided calls"))?;
            decided.extend(rows.into_iter().map(|(id,)| id));
        }
        Ok(decided)
    }

    /// Calls past their deadline at `cutoff`, of any instance, oldest first: pending ones past
    /// their expiry, and approved ones past their pickup deadline.
    pub async fn overdue(
        &self,
        status: CallStatus,
        cutoff: Timestamp,
    ) -> Result<Vec<CallId>, StoreError> {
        let sql = match status {
            CallStatus::Approved => {
                "SELECT id FROM tool_calls WHERE status = $1 AND (pickup_by IS NULL OR pickup_by < $2) \
                 ORDER BY id LIMIT 1000"
            }
            _ => {
                "SELECT id FROM tool_calls WHERE status = $1 AND expires_at < $2 \
                 ORDER BY id LIMIT 1000"
            }
        };
        let rows: Vec<(CallId,)> = sqlx::query_as(sql)
            .bind(status)
            .bind(cutoff)
            .fetch_all(&self.pool)
            .await
            .map_err(query("select overdue calls"))?;
        Ok(rows.into_iter().map(|(id,)| id).collect())
    }

    /// Ids of calls in `status` whose agent's request is gone: held by an instance that is not
    /// alive (no heartbeat since `alive_since`) other than `me`, or, when `including_mine`, by
    /// `me` (an earlier run of this instance).
    pub async fn orphaned(
        &self,
        status: CallStatus,
        me: &str,
        including_mine: bool,
        alive_since: Timestamp,
    ) -> Result<Vec<CallId>, StoreError> {
        let rows: Vec<(CallId,)> = sqlx::query_as(
            "SELECT id FROM tool_calls WHERE status = $1 AND ( \
               ($2 = 1 AND instance_id = $3) \
               OR (instance_id <> $3 AND instance_id NOT IN \
                   (SELECT id FROM instances WHERE heartbeat_at >= $4))) \
             ORDER BY id LIMIT 1000",
        )
        .bind(status)
        .bind(i64::from(including_mine))
        .bind(me)
        .bind(alive_since)
        .fetch_all(&self.pool)
        .await
        .map_err(query("select orphaned calls"))?;
        Ok(rows.into_iter().map(|(id,)| id).collect())
    }
}
