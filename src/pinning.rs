//! Tool-definition pinning (rug-pull detection). The first time Airlock sees an upstream's tools
//! it records each definition's digest (canonical `name, title, description, inputSchema,
//! outputSchema, annotations`); a later `tools/list` with a changed definition quarantines that
//! tool, since the changed description is itself what would reach the model: it is removed from
//! `tools/list`, and its calls (approved pickups included) are refused with a text naming what
//! changed, until an admin accepts the change (tools page, or `airlock tools accept`). A tool
//! that appears later is accepted or quarantined by `[[upstream]] new_tools`.
//!
//! The pins live in the store; each instance keeps them in memory, screens every listing from
//! there at once (no database trip on the agent's path) and writes what it saw in the
//! background (until written, what it saw overrides the store's rows, so a reload cannot undo a
//! quarantine). A background task reloads them every [`FRESH_FOR`] (the agent's path never waits
//! for the store), so a change or an acceptance made by another instance (or the CLI) holds
//! everywhere within seconds.
//!
//! Only agents' own `tools/list` answers are screened: they are what reaches a model, live. The
//! dashboard's list is cached for a minute, and a stale copy must never count as the upstream
//! "changing back".

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use serde_json::{Map, Value};

use crate::audit::{AuditWriter, Entry};
use crate::config::NewTools;
use crate::domain::{Actor, Timestamp};
use crate::store::{PinRow, SeenTool, Store, StoreError};

/// How long the pins in memory are trusted before they are read again.
const FRESH_FOR: Duration = Duration::from_secs(3);

/// The parts of a definition that are pinned: what the model reads and what calls look like.
pub const PINNED_FIELDS: [&str; 6] = [
    "name",
    "title",
    "description",
    "inputSchema",
    "outputSchema",
    "annotations",
];

pub struct Pins {
    store: Store,
    audit: AuditWriter,
    new_tools: HashMap<String, NewTools>,
    state: Arc<Mutex<State>>,
    /// Sightings to write, in the order they were made (one writer, so a later sighting never
    /// lands before an earlier one).
    sightings: tokio::sync::mpsc::UnboundedSender<Sighting>,
}

/// A definition seen in a listing, waiting to be written.
struct Sighting {
    upstream: String,
    tool: String,
    digest: String,
    definition: String,
    accept_if_new: bool,
}

#[derive(Default)]
struct State {
    /// By upstream, then tool.
    pins: HashMap<String, HashMap<String, PinRow>>,
    /// Rows seen here and not yet written: they stand over what a reload reads.
    unwritten: HashMap<(String, String), PinRow>,
    /// Counts the writes that came back: a reload that read the store before one of them is
    /// older than what is in memory, and is dropped.
    writes: u64,
}

/// A tool whose latest definition is not the accepted one.
#[derive(Debug, Clone)]
pub struct Quarantined {
    pub upstream: String,
    pub tool: String,
    /// The accepted definition (`None`: the tool appeared later, under `new_tools = "quarantine"`).
    pub accepted: Option<Value>,
    pub accepted_at: Option<Timestamp>,
    pub seen: Value,
    pub seen_digest: String,
    pub seen_at: Timestamp,
    /// The pinned fields that differ.
    pub changed: Vec<&'static str>,
}

impl Pins {
    /// Reads the pins; `new_tools` says, per upstream, what a tool that appears later gets.
    pub async fn load(
        store: Store,
        audit: AuditWriter,
        new_tools: HashMap<String, NewTools>,
    ) -> Result<Self, StoreError> {
        let state = Arc::new(Mutex::new(State::default()));
        let (sightings, queued) = tokio::sync::mpsc::unbounded_channel();
        let writer = Writer {
            store: store.clone(),
            audit: audit.clone(),
            state: Arc::clone(&state),
        };
        tokio::spawn(writer.run(queued));
        reload(&store, &state).await?;
        tokio::spawn(refresh(store.clone(), Arc::downgrade(&state)));
        Ok(Self {
            store,
            audit,
            new_tools,
            state,
            sightings,
        })
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Screens `upstream`'s tools as a `tools/list` answer passes: removes the quarantined
    /// ones, and records (in the background) what it saw.
    pub fn screen(&self, upstream: &str, tools: &mut Vec<Value>) {
        let withheld = self.note(upstream, tools);
        if !withheld.is_empty() {
            tools.retain(|tool| {
                !tool
                    .get("name")
                    .and_then(Value::as_str)
                    .is_some_and(|name| withheld.iter().any(|w| w == name))
            });
        }
    }

    /// Notes `upstream`'s tools as listed (recording new and changed definitions in the
    /// background) and returns the names of those that are quarantined.
    pub fn note(&self, upstream: &str, tools: &[Value]) -> Vec<String> {
        let new_tools = self.new_tools.get(upstream).copied().unwrap_or_default();
        let mut seen = Vec::new();
        let mut withheld = Vec::new();
        let accept_if_new;
        {
            let mut state = self.lock();
            let first_list = state.pins.get(upstream).is_none_or(HashMap::is_empty);
            accept_if_new = first_list || new_tools == NewTools::Allow;
            let State {
                pins, unwritten, ..
            } = &mut *state;
            let known = pins.entry(upstream.to_owned()).or_default();
            for tool in tools {
                let Some(name) = tool.get("name").and_then(Value::as_str) else {
                    continue;
                };
                let (digest, definition) = pinned(tool);
                let pin = known.get(name);
                if pin.is_none_or(|pin| pin.seen_digest != digest) {
                    let row = provisional(upstream, name, &digest, &definition, pin, accept_if_new);
                    unwritten.insert((upstream.to_owned(), name.to_owned()), row.clone());
                    known.insert(name.to_owned(), row);
                    seen.push((name.to_owned(), digest, definition));
                }
                if known.get(name).is_some_and(PinRow::quarantined) {
                    withheld.push(name.to_owned());
                }
            }
        }
        for (tool, digest, definition) in seen {
            let sighting = Sighting {
                upstream: upstream.to_owned(),
                tool,
                digest,
                definition,
                accept_if_new,
            };
            // The writer runs as long as the runtime; if it is gone, memory still holds it.
            let _ = self.sightings.send(sighting);
        }
        withheld
    }

    /// Why a call of `upstream.tool` is refused, if its tool is quarantined.
    pub fn refusal(&self, upstream: &str, tool: &str) -> Option<String> {
        let state = self.lock();
        let pin = state.pins.get(upstream)?.get(tool)?;
        if !pin.quarantined() {
            return None;
        }
        Some(match (&pin.accepted_at, &pin.accepted_definition) {
            (Some(at), Some(accepted)) => format!(
                "{upstream}.{tool} changed its definition since it was accepted on {} ({}); an \
                 admin must review the change; not run",
                at.minute(),
                changed_fields(accepted, &pin.seen_definition).join(", ")
            ),
            _ => format!(
                "{upstream}.{tool} appeared after the upstream's tools were accepted \
                 (new_tools = \"quarantine\"); an admin must review it; not run"
            ),
        })
    }

    /// Every quarantined tool, for the tools page and `airlock tools diff`.
    pub fn quarantined(&self) -> Vec<Quarantined> {
        let state = self.lock();
        let mut all: Vec<Quarantined> = state
            .pins
            .values()
            .flat_map(HashMap::values)
            .filter(|pin| pin.quarantined())
            .map(quarantined)
            .collect();
        all.sort_by(|a, b| (&a.upstream, &a.tool).cmp(&(&b.upstream, &b.tool)));
        all
    }

    /// Accepts the definition of `upstream.tool` with `digest` (the one the admin reviewed) and
    /// records who did; false when the tool has since changed again (or is not quarantined).
    pub async fn accept(
        &self,
        upstream: &str,
        tool: &str,
        digest: &str,
        actor: &Actor,
    ) -> Result<bool, StoreError> {
        let accepted = self
            .store
            .accept_tool(upstream, tool, digest, actor.name())
            .await?;
        if accepted {
            let mut entry = Entry::now("tool_accepted", actor);
            entry.upstream = Some(upstream.to_owned());
            entry.tool = Some(tool.to_owned());
            entry.detail = Some(format!("definition {digest} accepted"));
            self.audit.record(entry);
            let mut state = self.lock();
            if let Some(pin) = state
                .pins
                .get_mut(upstream)
                .and_then(|pins| pins.get_mut(tool))
                .filter(|pin| pin.seen_digest == digest)
            {
                pin.accepted_digest = Some(pin.seen_digest.clone());
                pin.accepted_definition = Some(pin.seen_definition.clone());
                pin.accepted_at = Some(Timestamp::now());
                pin.accepted_by = Some(actor.name().to_owned());
            }
        }
        Ok(accepted)
    }
}

/// Reads the pins into memory, over which the sightings not yet written still stand.
async fn reload(store: &Store, state: &Mutex<State>) -> Result<(), StoreError> {
    let writes_before = state.lock().unwrap_or_else(PoisonError::into_inner).writes;
    let rows = store.pins().await?;
    let mut by_upstream: HashMap<String, HashMap<String, PinRow>> = HashMap::new();
    for row in rows {
        by_upstream
            .entry(row.upstream.clone())
            .or_default()
            .insert(row.tool.clone(), row);
    }
    let mut state = state.lock().unwrap_or_else(PoisonError::into_inner);
    if state.writes != writes_before {
        // A write came back while reading: what was read may be older than memory.
        return Ok(());
    }
    for ((upstream, tool), row) in &state.unwritten {
        by_upstream
            .entry(upstream.clone())
            .or_default()
            .insert(tool.clone(), row.clone());
    }
    state.pins = by_upstream;
    Ok(())
}

/// Reloads the pins every [`FRESH_FOR`] while the pins are in use; a store that cannot be read
/// leaves the ones in memory in force.
async fn refresh(store: Store, state: std::sync::Weak<Mutex<State>>) {
    loop {
        tokio::time::sleep(FRESH_FOR).await;
        let Some(state) = state.upgrade() else {
            return;
        };
        if let Err(e) = reload(&store, &state).await {
            tracing::warn!(error = %crate::telemetry::error_chain(&e), "cannot read the tool pins; the ones in memory stay in force");
        }
    }
}

/// Writes sightings in order, and takes each written row into memory unless a newer sighting
/// of the tool is still waiting.
struct Writer {
    store: Store,
    audit: AuditWriter,
    state: Arc<Mutex<State>>,
}

impl Writer {
    async fn run(self, mut queued: tokio::sync::mpsc::UnboundedReceiver<Sighting>) {
        while let Some(sighting) = queued.recv().await {
            self.record(&sighting).await;
        }
    }

    async fn record(&self, sighting: &Sighting) {
        let (upstream, tool, digest) = (&sighting.upstream, &sighting.tool, &sighting.digest);
        let seen = SeenTool {
            upstream,
            tool,
            digest,
            definition: &sighting.definition,
            accept_if_new: sighting.accept_if_new,
        };
        let row = match self.store.see_tool(&seen).await {
            Ok(row) => row,
            Err(e) => {
                tracing::error!(error = %crate::telemetry::error_chain(&e), upstream, tool, "cannot record a tool definition");
                return;
            }
        };
        if row.quarantined() {
            let mut entry = Entry::now("tool_quarantined", &Actor::SYSTEM);
            entry.upstream = Some(upstream.clone());
            entry.tool = Some(tool.clone());
            entry.detail = Some(format!("definition {digest} is not the accepted one"));
            self.audit.record(entry);
            tracing::warn!(upstream, tool, "tool definition changed; quarantined");
        }
        let mut state = self.state.lock().unwrap_or_else(PoisonError::into_inner);
        state.writes += 1;
        let key = (upstream.clone(), tool.clone());
        let newer_waits = state
            .unwritten
            .get(&key)
            .is_some_and(|pending| pending.seen_digest != row.seen_digest);
        if newer_waits {
            return;
        }
        state.unwritten.remove(&key);
        state
            .pins
            .entry(upstream.clone())
            .or_default()
            .insert(tool.clone(), row);
    }
}

/// The pinned part of a tool's definition as canonical JSON (keys sorted at every level), and
/// its SHA-256.
pub fn pinned(tool: &Value) -> (String, String) {
    let mut kept = Map::new();
    for field in PINNED_FIELDS {
        if let Some(value) = tool.get(field) {
            kept.insert(field.to_owned(), canonical(value));
        }
    }
    let text = Value::Object(kept).to_string();
    (crate::secrets::sha256_hex(text.as_bytes()), text)
}

fn canonical(value: &Value) -> Value {
    match value {
        Value::Object(map) => {
            let mut keys: Vec<&String> = map.keys().collect();
            keys.sort();
            Value::Object(
                keys.into_iter()
                    .map(|key| (key.clone(), canonical(&map[key])))
                    .collect(),
            )
        }
        Value::Array(items) => Value::Array(items.iter().map(canonical).collect()),
        other => other.clone(),
    }
}

/// The pinned fields in which two canonical definitions differ.
pub fn changed_fields(accepted: &str, seen: &str) -> Vec<&'static str> {
    let read = |text: &str| serde_json::from_str::<Value>(text).unwrap_or(Value::Null);
    let (accepted, seen) = (read(accepted), read(seen));
    PINNED_FIELDS
        .into_iter()
        .filter(|field| accepted.get(field) != seen.get(field))
        .collect()
}

/// The row a screened tool has in memory until its write comes back.
fn provisional(
    upstream: &str,
    tool: &str,
    digest: &str,
    definition: &str,
    existing: Option<&PinRow>,
    accept_if_new: bool,
) -> PinRow {
    let now = Timestamp::now();
    match existing {
        Some(pin) => PinRow {
            seen_digest: digest.to_owned(),
            seen_definition: definition.to_owned(),
            seen_at: now,
            ..pin.clone()
        },
        None => PinRow {
            upstream: upstream.to_owned(),
            tool: tool.to_owned(),
            accepted_digest: accept_if_new.then(|| digest.to_owned()),
            accepted_definition: accept_if_new.then(|| definition.to_owned()),
            accepted_at: accept_if_new.then_some(now),
            accepted_by: accept_if_new.then(|| "first seen".to_owned()),
            seen_digest: digest.to_owned(),
            seen_definition: definition.to_owned(),
            seen_at: now,
        },
    }
}

fn quarantined(pin: &PinRow) -> Quarantined {
    let read = |text: &str| serde_json::from_str::<Value>(text).unwrap_or(Value::Null);
    Quarantined {
        upstream: pin.upstream.clone(),
        tool: pin.tool.clone(),
        accepted: pin.accepted_definition.as_deref().map(read),
        accepted_at: pin.accepted_at,
        seen: read(&pin.seen_definition),
        seen_digest: pin.seen_digest.clone(),
        seen_at: pin.seen_at,
        changed: pin.accepted_definition.as_deref().map_or_else(
            || PINNED_FIELDS.to_vec(),
            |a| changed_fields(a, &pin.seen_definition),
        ),
    }
}
