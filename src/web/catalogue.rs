//! The upstreams' tool lists as the dashboard shows them, fetched with `tools/list` on the service
//! connection and kept for a minute, so a page view does not ask every upstream every time. A slow
//! or dead upstream costs a page at most `FETCH_TIMEOUT` and shows as an error, never a hang.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::app::AppState;

/// How long a fetched list is shown before it is asked for again.
const FRESH_FOR: Duration = Duration::from_secs(60);
/// How long one page waits for an upstream's list.
const FETCH_TIMEOUT: Duration = Duration::from_secs(5);

type Listing = Result<Arc<Vec<Value>>, String>;
/// A list and when it was fetched.
type Cached = (Instant, Arc<Vec<Value>>);

#[derive(Default)]
pub struct ToolCatalogue {
    lists: Mutex<HashMap<String, Cached>>,
}

impl ToolCatalogue {
    /// `upstream`'s tools, from the cache when fresh; an error text when it cannot be had.
    pub async fn tools(&self, app: &AppState, upstream: &str) -> Listing {
        if let Some((at, tools)) = self.cached(upstream)
            && at.elapsed() < FRESH_FOR
        {
            return Ok(tools);
        }
        let runtime = app
            .upstreams
            .get(upstream)
            .ok_or_else(|| format!("no upstream {upstream} is configured any more"))?;
        let tools = match tokio::time::timeout(FETCH_TIMEOUT, runtime.list_tools()).await {
            Ok(Ok(tools)) => Arc::new(tools),
            Ok(Err(e)) => return Err(e.to_string()),
            Err(_) => return Err(format!("no answer within {} s", FETCH_TIMEOUT.as_secs())),
        };
        self.lists
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .insert(upstream.to_owned(), (Instant::now(), tools.clone()));
        Ok(tools)
    }

    fn cached(&self, upstream: &str) -> Option<Cached> {
        self.lists
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .get(upstream)
            .cloned()
    }

    /// The description `upstream` gives `tool`, if it can be had.
    pub async fn description(&self, app: &AppState, upstream: &str, tool: &str) -> Option<String> {
        let tools = self.tools(app, upstream).await.ok()?;
        tools
            .iter()
            .find(|t| t.get("name").and_then(Value::as_str) == Some(tool))
            .and_then(|t| t.get("description"))
            .and_then(Value::as_str)
            .map(str::to_owned)
    }
}
