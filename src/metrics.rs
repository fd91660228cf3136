//! Prometheus metrics, rendered as text on `/metrics`: tool calls by upstream, tool and outcome, and
//! a histogram of the time each proxied request took end to end (Airlock plus upstream).
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
    ApprovalRequired,
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
            Self::ApprovalRequired => "approval_required",
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

#[derive(Default)]
struct Histogram {
    counts: [u64; BUCKETS.len()],
    count: u64,
    sum: f64,
}

#[derive(Default)]
pub struct Metrics {
    calls: Mutex<BTreeMap<(String, String, Outcome), u64>>,
    latency: Mutex<BTreeMap<(String, &'static str), Histogram>>,
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
        let mut latency = self
            .latency
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let h = latency.entry((upstream.to_owned(), method)).or_default();
        for (i, bound) in BUCKETS.iter().enumerate() {
            if secs <= *bound {
                h.counts[i] += 1;
            }
        }
        h.count += 1;
        h.sum += secs;
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
            for (bound, n) in BUCKETS.iter().zip(h.counts) {
                let _ = writeln!(
                    out,
                    "airlock_proxy_request_duration_seconds_bucket{{{labels},le=\"{bound}\"}} {n}"
                );
            }
            let _ = writeln!(
                out,
                "airlock_proxy_request_duration_seconds_bucket{{{labels},le=\"+Inf\"}} {}",
                h.count
            );
            let _ = writeln!(
                out,
                "airlock_proxy_request_duration_seconds_sum{{{labels}}} {}",
                h.sum
            );
            let _ = writeln!(
                out,
                "airlock_proxy_request_duration_seconds_count{{{labels}}} {}",
                h.count
            );
        }
        for (name, help, value) in gauges {
            let _ = writeln!(
                out,
                "# HELP {name} {help}\n# TYPE {name} gauge\n{name} {value}"
            );
        }
        out
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
    }
}
