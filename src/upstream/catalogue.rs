//! The upstreams' tool lists as the dashboard and emails show them, fetched with `tools/list` on the service
//! connection and kept for a minute, so a page view does not ask every upstream every time. A slow
//! or dead upstream costs a page at most `FETCH_TIMEOUT` and shows as an error, never a hang; the
//! error is kept for `ERROR_FOR`, so a dead upstream does not slow every page after it.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::Value;

use super::Upstream;
use crate::policy::risk::{self, Assessment};

/// How long a fetched list is shown before it is asked for again.
const FRESH_FOR: Duration = Duration::from_secs(60);
/// How long a failure to fetch is shown before trying again.
const ERROR_FOR: Duration = Duration::from_secs(10);
/// How long one page waits for an upstream's list.
const FETCH_TIMEOUT: Duration = Duration::from_secs(5);

type Listing = Result<Arc<Vec<Value>>, String>;
/// A list (or why there is none) and when it was fetched.
type Cached = (Instant, Listing);

/// One upstream's tools by name, with what the classifier says about each.
type Assessed = Arc<HashMap<String, Arc<Assessment>>>;

pub struct ToolCatalogue {
    upstreams: Arc<BTreeMap<String, Arc<Upstream>>>,
    lists: Mutex<HashMap<String, Cached>>,
    /// Per upstream, what the classifier says about each tool of the latest list seen (from
    /// agents' `tools/list` answers as they pass, or fetched here). Kept until a newer list
    /// replaces it: the gate reads it on every call, without asking the upstream.
    risks: Mutex<HashMap<String, Assessed>>,
}

impl ToolCatalogue {
    pub fn new(upstreams: Arc<BTreeMap<String, Arc<Upstream>>>) -> Self {
        Self {
            upstreams,
            lists: Mutex::default(),
            risks: Mutex::default(),
        }
    }

    /// Notes the tools of a `tools/list` answer (or one page of it) from `upstream`.
    pub fn observe(&self, upstream: &str, tools: &[Value]) {
        let assessed: Vec<(String, Arc<Assessment>)> = tools
            .iter()
            .filter_map(|tool| {
                let name = tool.get("name")?.as_str()?;
                Some((name.to_owned(), Arc::new(risk::classify(tool))))
            })
            .collect();
        let mut risks = self
            .risks
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let known = risks.entry(upstream.to_owned()).or_default();
        Arc::make_mut(known).extend(assessed);
    }

    /// What the classifier says about `upstream`'s `tool`: from the latest list seen, or (when
    /// none was seen yet) a list fetched now; a tool the list lacks, or an upstream that cannot
    /// list, is judged by its name alone.
    pub async fn assessment(&self, upstream: &str, tool: &str) -> Arc<Assessment> {
        let seen = |catalogue: &Self| {
            catalogue
                .risks
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner)
                .get(upstream)
                .cloned()
        };
        let known = match seen(self) {
            Some(known) => Some(known),
            None => {
                // Fetching notes the list (see `tools`), unless the upstream cannot list.
                let _ = self.tools(upstream).await;
                seen(self)
            }
        };
        known
            .and_then(|known| known.get(tool).cloned())
            .unwrap_or_else(|| Arc::new(risk::classify(&serde_json::json!({ "name": tool }))))
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
            Ok(Ok(tools)) => {
                self.observe(upstream, &tools);
                Ok(Arc::new(tools))
            }
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
