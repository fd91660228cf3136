//! The upstreams' tool lists as the dashboard and emails show them, fetched with `tools/list` on the service
//! connection and kept for a minute, so a page view does not ask every upstream every time. A slow
//! or dead upstream costs a page at most `FETCH_TIMEOUT` and shows as an error, never a hang; the
//! error is kept for `ERROR_FOR`, so a dead upstream does not slow every page after it.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::Value;

use super::Upstream;

/// How long a fetched list is shown before it is asked for again.
const FRESH_FOR: Duration = Duration::from_secs(60);
/// How long a failure to fetch is shown before trying again.
const ERROR_FOR: Duration = Duration::from_secs(10);
/// How long one page waits for an upstream's list.
const FETCH_TIMEOUT: Duration = Duration::from_secs(5);

type Listing = Result<Arc<Vec<Value>>, String>;
/// A list (or why there is none) and when it was fetched.
type Cached = (Instant, Listing);

pub struct ToolCatalogue {
    upstreams: Arc<BTreeMap<String, Arc<Upstream>>>,
    lists: Mutex<HashMap<String, Cached>>,
}

impl ToolCatalogue {
    pub fn new(upstreams: Arc<BTreeMap<String, Arc<Upstream>>>) -> Self {
        Self {
            upstreams,
            lists: Mutex::default(),
        }
    }

    /// `upstream`'s tools, from the cache when fresh; an error text when it cannot be had.
    pub async fn tools(&self, upstream: &str) -> Listing {
        if let Some((at, listing)) = self.cached(upstream) {
            let fresh_for = if listing.is_ok() {
                FRESH_FOR
            } else {
                ERROR_FOR
            };
            if at.elapsed() < fresh_for {
                return listing;
            }
        }
        let runtime = self
            .upstreams
            .get(upstream)
            .ok_or_else(|| format!("no upstream {upstream} is configured any more"))?;
        let listing = match tokio::time::timeout(FETCH_TIMEOUT, runtime.list_tools()).await {
            Ok(Ok(tools)) => Ok(Arc::new(tools)),
            Ok(Err(e)) => Err(e.to_string()),
            Err(_) => Err(format!("no answer within {} s", FETCH_TIMEOUT.as_secs())),
        };
        self.lists
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .insert(upstream.to_owned(), (Instant::now(), listing.clone()));
        listing
    }

    fn cached(&self, upstream: &str) -> Option<Cached> {
        self.lists
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .get(upstream)
            .cloned()
    }

    /// The description `upstream` gives `tool`, if it can be had.
    pub async fn description(&self, upstream: &str, tool: &str) -> Option<String> {
        let tools = self.tools(upstream).await.ok()?;
        tools
            .iter()
            .find(|t| t.get("name").and_then(Value::as_str) == Some(tool))
            .and_then(|t| t.get("description"))
            .and_then(Value::as_str)
            .map(str::to_owned)
    }
}
