//! Prometheus metrics, rendered as text on `/metrics`: tool calls by upstream, tool and outcome, a
//! histogram of the time each proxied request took end to end (Airlock plus upstream), and the
//! approval queue's decisions by outcome with a histogram of how long calls waited for them.
//!
//! Tool names come from agents, so they are attacker-controlled label values: after
//! `MAX_SERIES` distinct series, new names are counted under `tool="_other"`, and a name is cut
//! to `MAX_LABEL_CHARS`.

use std::collections::BTreeMap;
use std::fmt::Write;
use std::sync::Mutex;
use std::time::Duration;

/// What happened to a `tools/call`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Outcome {
    /// Forwarded; the upstream's result came back.
    Ok,
    /// Forwarded; the upstream's result had `isError: true`.
    ToolError,
    /// Forwarded; the upstream answered with a JSON-RPC error.
    Error,
    /// Not answered: the upstream was down or died mid-call.
    Unavailable,
    Denied,
    RateLimited,
    /// Parked for approval and not forwarded: rejected, expired, unclaimed, withdrawn, or sent
    /// for another request with the same key.
    NotApproved,
    /// Parked, and answered "still waiting, call again" when `[approval] hold` passed (or
    /// Airlock stopped); the call stays in the queue.
    Waiting,
}

impl Outcome {
    fn label(self) -> &'static str {
        match self {
            Self::Ok => "ok",
            Self::ToolError => "tool_error",
            Self::Error => "error",
            Self::Unavailable => "unavailable",
            Self::Denied => "denied",
            Self::RateLimited => "rate_limited",
            Self::NotApproved => "not_approved",
            Self::Waiting => "waiting",
        }
    }
}

const MAX_SERIES: usize = 5000;
/// Longer tool names are cut: a label is no place for an agent's 4 MiB string.
const MAX_LABEL_CHARS: usize = 64;
/// Upper bounds of the latency buckets, in seconds.
const BUCKETS: [f64; 12] = [
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 5.0, 30.0,
];

/// Upper bounds of the time-to-decision buckets, in seconds (people take seconds to hours).
const DECISION_BUCKETS: [f64; 10] = [
    1.0, 5.0, 15.0, 30.0, 60.0, 120.0, 300.0, 600.0, 1800.0, 3600.0,
];

struct Histogram {
    bounds: &'static [f64],
    counts: Vec<u64>,
    count: u64,
    sum: f64,
}

impl Histogram {
    fn new(bounds: &'static [f64]) -> Self {
        Self {
            bounds,
            counts: vec![0; bounds.len()],
            count: 0,
            sum: 0.0,
        }
    }

    fn observe(&mut self, value: f64) {
        for (bound, n) in self.bounds.iter().zip(&mut self.counts) {
            if value <= *bound {
                *n += 1;
            }
        }
        self.count += 1;
        self.sum += value;
    }

    fn render(&self, out: &mut String, name: &str, labels: &str) {
        let sep = if labels.is_empty() { "" } else { "," };
        for (bound, n) in self.bounds.iter().zip(&self.counts) {
            let _ = writeln!(out, "{name}_bucket{{{labels}{sep}le=\"{bound}\"}} {n}");
        }
        let _ = writeln!(
            out,
            "{name}_bucket{{{labels}{sep}le=\"+Inf\"}} {}",
            self.count
        );
        let braced = if labels.is_empty() {
            String::new()
        } else {
            format!("{{{labels}}}")
        };
        let _ = writeln!(out, "{name}_sum{braced} {}", self.sum);
        let _ = writeln!(out, "{name}_count{braced} {}", self.count);
    }
}

pub struct Metrics {
    calls: Mutex<BTreeMap<(String, String, Outcome), u64>>,
    latency: Mutex<BTreeMap<(String, &'static str), Histogram>>,
    decisions: Mutex<BTreeMap<&'static str, u64>>,
    time_to_decision: Mutex<Histogram>,
}

impl Default for Metrics {
    fn default() -> Self {
        Self {
            calls: Mutex::default(),
            latency: Mutex::default(),
            decisions: Mutex::default(),
            time_to_decision: Mutex::new(Histogram::new(&DECISION_BUCKETS)),
        }
    }
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

impl Metrics {
    pub fn tool_call(&self, upstream: &str, tool: &str, outcome: Outcome) {
        let mut calls = self
            .calls
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let tool: String = tool.chars().take(MAX_LABEL_CHARS).collect();
        let mut key = (upstream.to_owned(), tool, outcome);
        if calls.len() >= MAX_SERIES && !calls.contains_key(&key) {
            key.1 = "_other".to_owned();
        }
        *calls.entry(key).or_default() += 1;
    }

    pub fn observe_latency(&self, upstream: &str, method: &str, elapsed: Duration) {
        let method = method_label(method);
        let secs = elapsed.as_secs_f64();
        lock(&self.latency)
            .entry((upstream.to_owned(), method))
            .or_insert_with(|| Histogram::new(&BUCKETS))
            .observe(secs);
    }

    /// A parked call's fate as its request learned it (`approved`, `rejected`, `expired`, ...);
    /// `waited` is the time from parking to a reviewer's decision, when a reviewer decided.
    pub fn approval_decision(&self, outcome: &'static str, waited: Option<f64>) {
        *lock(&self.decisions).entry(outcome).or_default() += 1;
        if let Some(secs) = waited
            && matches!(outcome, "approved" | "rejected")
        {
            lock(&self.time_to_decision).observe(secs);
        }
    }

    /// The Prometheus text exposition; `gauges` are point-in-time values added by the caller.
    pub fn render(&self, gauges: &[(&str, &str, f64)]) -> String {
        let mut out = String::new();
        out.push_str("# HELP airlock_tool_calls_total Tool calls by upstream, tool and outcome.\n");
        out.push_str("# TYPE airlock_tool_calls_total counter\n");
        for ((upstream, tool, outcome), n) in self
            .calls
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .iter()
        {
            let _ = writeln!(
                out,
                "airlock_tool_calls_total{{upstream=\"{}\",tool=\"{}\",outcome=\"{}\"}} {n}",
                escape(upstream),
                escape(tool),
                outcome.label()
            );
        }
        out.push_str("# HELP airlock_proxy_request_duration_seconds Time from an agent's request to the upstream's answer, through Airlock.\n");
        out.push_str("# TYPE airlock_proxy_request_duration_seconds histogram\n");
        for ((upstream, method), h) in self
            .latency
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .iter()
        {
            let labels = format!("upstream=\"{}\",method=\"{method}\"", escape(upstream));
            h.render(&mut out, "airlock_proxy_request_duration_seconds", &labels);
        }
        out.push_str(
            "# HELP airlock_approval_decisions_total Parked calls by how they left the queue.\n",
        );
        out.push_str("# TYPE airlock_approval_decisions_total counter\n");
        for (outcome, n) in lock(&self.decisions).iter() {
            let _ = writeln!(
                out,
                "airlock_approval_decisions_total{{outcome=\"{outcome}\"}} {n}"
            );
        }
        out.push_str("# HELP airlock_approval_decision_seconds Time from parking a call to a reviewer's approval or rejection.\n");
        out.push_str("# TYPE airlock_approval_decision_seconds histogram\n");
        lock(&self.time_to_decision).render(&mut out, "airlock_approval_decision_seconds", "");
        for (name, help, value) in gauges {
            let _ = writeln!(
                out,
                "# HELP {name} {help}\n# TYPE {name} gauge\n{name} {value}"
            );
        }
        out
    }
}

/// Appends counters kept elsewhere (name, help, value) in the exposition format.
pub fn render_counters(out: &mut String, counters: &[(&str, &str, u64)]) {
    for (name, help, value) in counters {
        let _ = writeln!(
            out,
            "# HELP {name} {help}\n# TYPE {name} counter\n{name} {value}"
        );
    }
}

/// MCP methods are a small known set; anything else an agent sends is `other`.
fn method_label(method: &str) -> &'static str {
    const KNOWN: [&str; 16] = [
        "initialize",
        "ping",
        "tools/list",
        "tools/call",
        "resources/list",
        "resources/read",
        "resources/templates/list",
        "resources/subscribe",
        "resources/unsubscribe",
        "prompts/list",
        "prompts/get",
        "completion/complete",
        "logging/setLevel",
        "server/discover",
        "tasks/get",
        "tasks/result",
    ];
    KNOWN
        .iter()
        .find(|m| **m == method)
        .copied()
        .unwrap_or("other")
}

fn escape(value: &str) -> String {
    value
        .replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_counters_histograms_and_escapes_labels() {
        let m = Metrics::default();
        m.tool_call("telegram", "get_chats", Outcome::Ok);
        m.tool_call("telegram", "get_chats", Outcome::Ok);
        m.tool_call("telegram", "bad\"name", Outcome::Denied);
        m.observe_latency("telegram", "tools/call", Duration::from_millis(3));
        m.observe_latency("telegram", "made/up", Duration::from_millis(3));
        let text = m.render(&[("airlock_sessions", "Open sessions.", 2.0)]);
        assert!(text.contains(
            "airlock_tool_calls_total{upstream=\"telegram\",tool=\"get_chats\",outcome=\"ok\"} 2"
        ));
        assert!(text.contains("tool=\"bad\\\"name\",outcome=\"denied\"} 1"));
        assert!(text.contains("method=\"tools/call\",le=\"0.005\"} 1"));
        assert!(text.contains("method=\"tools/call\",le=\"0.0025\"} 0"));
        assert!(text.contains("method=\"other\""));
        assert!(text.contains("airlock_sessions 2"));
        m.approval_decision("approved", Some(12.0));
        m.approval_decision("expired", Some(600.0));
        let text = m.render(&[]);
        assert!(text.contains("airlock_approval_decisions_total{outcome=\"approved\"} 1"));
        assert!(text.contains("airlock_approval_decisions_total{outcome=\"expired\"} 1"));
        assert!(text.contains("airlock_approval_decision_seconds_bucket{le=\"15\"} 1"));
        assert!(text.contains("airlock_approval_decision_seconds_bucket{le=\"5\"} 0"));
        assert!(
            text.contains("airlock_approval_decision_seconds_count 1"),
            "expiry is no reviewer's decision"
        );
    }
}
