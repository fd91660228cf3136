//! The operator face over HTTP: liveness (`/healthz`), readiness (`/readyz`: store, upstreams,
//! policies) and Prometheus metrics (`/metrics`). With `[server] ops_token_sha256`, `/metrics`
//! needs that bearer token and `/readyz` shows its detail (upstream names, causes, policy errors)
//! only with it; without the token it still answers ready or not, for load balancers.

use axum::Json;
use axum::Router;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use serde_json::{Map, Value, json};

use crate::app::AppState;
use crate::domain::CallStatus;
use crate::policy::PolicyStatus;
use crate::upstream::LinkState;

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .route("/metrics", get(metrics))
}

async fn healthz() -> &'static str {
    "ok\n"
}

/// Whether the request may see operator detail: no ops token is configured, or it carries it.
fn operator(app: &AppState, headers: &HeaderMap) -> bool {
    let Some(expected) = &app.config.server.ops_token_sha256 else {
        return true;
    };
    headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .is_some_and(|token| {
            crate::secrets::same_token(
                &crate::secrets::sha256_hex(token.trim().as_bytes()),
                &expected.to_ascii_lowercase(),
            )
        })
}

/// 200 when the store answers, every shared upstream is up and every policy loaded; else 503,
/// with the reason per component in the body (for an operator: see [`operator`]).
async fn readyz(State(app): State<AppState>, headers: HeaderMap) -> impl IntoResponse {
    let mut ready = true;
    let store = match app.store.ping().await {
        Ok(()) => json!("ok"),
        Err(e) => {
            ready = false;
            tracing::warn!(error = %e, "store not ready");
            json!(format!("error: {e}"))
        }
    };
    let mut upstreams = Map::new();
    for (name, gateway) in app.gateways.iter() {
        let upstream = &gateway.upstream;
        let link = match upstream.service_state() {
            Some(LinkState::Up(_)) => "up".to_owned(),
            Some(LinkState::Starting) => {
                ready &= !upstream.shares_service_connection();
                "starting".to_owned()
            }
            Some(LinkState::Down(cause)) => {
                ready &= !upstream.shares_service_connection();
                format!("down: {cause}")
            }
            Some(LinkState::Stopped) => {
                ready = false;
                "stopped".to_owned()
            }
            None if upstream.isolation() == crate::config::Isolation::Agent => {
                "connects per agent".to_owned()
            }
            None => "connects per session".to_owned(),
        };
        let policy = match gateway.policy.status() {
            PolicyStatus::Ok => "ok".to_owned(),
            PolicyStatus::Stale { error } => {
                ready = false;
                format!("stale: last edit rejected: {error}")
            }
        };
        upstreams.insert(name.to_string(), json!({"link": link, "policy": policy}));
    }
    let status = if ready {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    let body = if operator(&app, &headers) {
        json!({"ready": ready, "store": store, "upstreams": Value::Object(upstreams)})
    } else {
        json!({"ready": ready})
    };
    (status, Json(body))
}

async fn metrics(State(app): State<AppState>, headers: HeaderMap) -> Response {
    if !operator(&app, &headers) {
        return (
            StatusCode::UNAUTHORIZED,
            [(header::WWW_AUTHENTICATE, "Bearer realm=\"airlock-ops\"")],
            "send the operator token: Authorization: Bearer TOKEN ([server] ops_token_sha256)\n",
        )
            .into_response();
    }
    let sessions = app.sessions.len() as f64;
    // Calls outlive requests: the queue is counted in the store (every instance's calls), the
    // requests waiting for them in this process. A store that does not answer leaves its two
    // gauges out (`/readyz` says why) rather than reporting zero.
    let pending = app.store.count_status(CallStatus::Pending).await.ok();
    let approved = app.store.count_status(CallStatus::Approved).await.ok();
    let mut gauges = vec![
        (
            "airlock_sessions",
            "Open downstream MCP sessions.",
            sessions,
        ),
        (
            "airlock_approval_requests_waiting",
            "Agents' requests waiting in this process for parked calls.",
            app.approvals.requests_waiting_total() as f64,
        ),
        (
            "airlock_audit_backlog_events",
            "Audit events of calls the policy decided alone, queued and not yet written.",
            app.audit.backlog() as f64,
        ),
    ];
    if let (Some(pending), Some(approved)) = (pending, approved) {
        gauges.push((
            "airlock_approvals_pending",
            "Parked calls waiting for a decision (all instances).",
            pending as f64,
        ));
        gauges.push((
            "airlock_approvals_awaiting_pickup",
            "Approved calls waiting for their agent to call again (all instances).",
            approved as f64,
        ));
    }
    let mut text = app.metrics.render(&gauges);
    let stats = &app.audit.stats;
    let count = |n: &std::sync::atomic::AtomicU64| n.load(std::sync::atomic::Ordering::Relaxed);
    crate::metrics::render_counters(
        &mut text,
        &[
            (
                "airlock_audit_events_written_total",
                "Audit events the batching writer appended to the chain.",
                count(&stats.written),
            ),
            (
                "airlock_audit_events_unrecordable_total",
                "Audit events the store refused, recorded as `unrecordable` instead.",
                count(&stats.unrecordable),
            ),
            (
                "airlock_audit_events_dropped_total",
                "Audit events lost (the writer far behind, or stopped with them unwritten).",
                count(&stats.dropped),
            ),
            (
                "airlock_audit_write_failures_total",
                "Failed attempts to write a batch of audit events.",
                count(&stats.failures),
            ),
        ],
    );
    ([(header::CONTENT_TYPE, "text/plain; version=0.0.4")], text).into_response()
}
