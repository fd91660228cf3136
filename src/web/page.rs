//! What every dashboard page shares: the layout's data ([`Chrome`]), the security headers, and
//! the small formatting helpers templates use (times, status badges, arguments as HTML). Errors
//! are `web::error`'s.
//!
//! Everything an agent sent (tool names, arguments, reasons typed by people) reaches the page only
//! through askama's escaping, or through [`arguments_html`], which escapes every string it writes.

use axum::extract::Request;
use axum::http::{HeaderValue, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use serde_json::Value;

pub use super::error::{PageError, PageResult};
use super::session::SignedIn;
use crate::domain::CallStatus;
use crate::policy::risk::Risk;
use crate::store::Role;

/// The Content-Security-Policy of every dashboard response: nothing but this origin's own files;
/// no inline script or style, no framing, forms post only here.
const CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; \
                   connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'";

/// Adds the browser-facing security headers to every response of the reviewer face.
pub async fn security_headers(request: Request, next: Next) -> Response {
    let mut response = next.run(request).await;
    let headers = response.headers_mut();
    // A handler may set a stricter or different policy for its own content (the outbox's HTML).
    headers
        .entry(header::CONTENT_SECURITY_POLICY)
        .or_insert(HeaderValue::from_static(CSP));
    headers.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    headers.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    headers
        .entry(header::REFERRER_POLICY)
        .or_insert(HeaderValue::from_static("same-origin"));
    headers
        .entry(header::CACHE_CONTROL)
        .or_insert(HeaderValue::from_static("no-store"));
    response
}

/// Refuses a request for a `Host` that is not this Airlock's (DNS rebinding: a page whose name was
/// re-pointed at Airlock's address would otherwise be served the dashboard, or the operator
/// endpoints, as its own origin).
pub async fn own_host(
    axum::extract::State(app): axum::extract::State<crate::app::AppState>,
    request: Request,
    next: Next,
) -> Response {
    let host = crate::http_guard::HostPolicy::host_of(request.uri(), request.headers());
    if app.hosts.permits(host) {
        next.run(request).await
    } else {
        PageError::forbidden(
            "This Airlock does not answer to that host name (see server.allowed_hosts).",
        )
        .into_response()
    }
}

/// The layout's data: who is signed in, and which page is open.
pub struct Chrome {
    pub email: String,
    pub role: Role,
    pub csrf: String,
    pub active: &'static str,
}

impl Chrome {
    pub fn new(signed: &SignedIn, active: &'static str) -> Self {
        Self {
            email: signed.user.email.clone(),
            role: signed.user.role(),
            csrf: signed.csrf.clone(),
            active,
        }
    }

    pub fn is_admin(&self) -> bool {
        self.role == Role::Admin
    }

    pub fn role_name(&self) -> &'static str {
        self.role.as_str()
    }

    /// The `aria-current` marker of the navigation link to `page`.
    pub fn current(&self, page: &str) -> &'static str {
        if self.active == page { "page" } else { "false" }
    }
}

/// An icon, a word and a colour class for a call's status: the icon and word carry the meaning,
/// so the badge reads the same without colour.
pub struct Badge {
    pub icon: &'static str,
    pub label: &'static str,
    pub class: &'static str,
}

pub fn status_badge(status: CallStatus) -> Badge {
    let (icon, class) = match status {
        CallStatus::Pending => ("◷", "pending"),
        CallStatus::Approved | CallStatus::Forwarding => ("➜", "approved"),
        CallStatus::Completed => ("✔", "approved"),
        CallStatus::Rejected => ("✖", "rejected"),
        CallStatus::Failed | CallStatus::OutcomeUnknown => ("⚠", "warning"),
        CallStatus::Expired | CallStatus::Unclaimed => ("◔", "muted"),
        CallStatus::Withdrawn | CallStatus::Abandoned => ("↩", "muted"),
    };
    Badge {
        icon,
        label: status.as_str(),
        class,
    }
}

/// A tool's risk at a glance.
pub fn risk_badge(risk: Risk) -> Badge {
    match risk {
        Risk::Credential => Badge {
            icon: "⚷",
            label: "credential",
            class: "rejected",
        },
        Risk::Destructive => Badge {
            icon: "⚠",
            label: "destructive",
            class: "warning",
        },
    }
}

/// The badge of a parked call: its tool's risk by name (credential or destructive), or
/// "sensitive" (it needs a human for its rule's sake).
pub fn parked_badge(tool: &str) -> Badge {
    match crate::policy::risk::classify(&serde_json::json!({ "name": tool })).risk() {
        Some(risk) => risk_badge(risk),
        None => Badge {
            icon: "⚑",
            label: "sensitive",
            class: "warning",
        },
    }
}

/// `2026-11-25T14:05:12.345Z` as `2026-11-25 14:05:12 UTC`.
pub fn short_time(at: &str) -> String {
    match (at.get(..10), at.get(11..19)) {
        (Some(day), Some(clock)) => format!("{day} {clock} UTC"),
        _ => at.to_owned(),
    }
}

/// Whole seconds from now until the stored time `at` (negative once past).
pub fn seconds_until(at: &str) -> i64 {
    time::OffsetDateTime::parse(at, &time::format_description::well_known::Rfc3339)
        .map(|at| (at - time::OffsetDateTime::now_utc()).whole_seconds())
        .unwrap_or(0)
}

pub use crate::approval::time_left;

/// A one-line preview of (already redacted) arguments, at most `max` characters, hidden
/// characters written out.
pub fn preview(arguments: &Value, max: usize) -> String {
    let text = crate::visible::visible(&arguments.to_string()).into_owned();
    if text.chars().count() <= max {
        text
    } else {
        let cut: String = text.chars().take(max.saturating_sub(1)).collect();
        format!("{cut}…")
    }
}

/// Strings longer than this are folded on the call page, showing their start.
const FOLD_CHARS: usize = 160;

/// Masked fields on the call page: a Reveal button for each (a reviewer who may decide), and
/// the one value a reviewer asked to see.
#[derive(Default)]
pub struct Reveal<'a> {
    /// The `id` of the form the buttons submit (`None`: no buttons).
    pub form: Option<&'a str>,
    /// The JSON pointer of the field revealed, and its real value.
    pub revealed: Option<(&'a str, &'a Value)>,
}

/// (Already redacted) arguments, pretty-printed as HTML: indented JSON with keys, strings and
/// numbers marked for colour, and long strings folded into a `<details>` that shows their start.
/// Every piece of text is escaped here, and characters that would change how it reads without
/// being seen are written out (`crate::visible`); the result is safe to insert as HTML.
pub fn arguments_html(value: &Value) -> String {
    arguments_html_with(value, &Reveal::default())
}

/// [`arguments_html`], with masked fields offered for reveal as `reveal` says.
pub fn arguments_html_with(value: &Value, reveal: &Reveal<'_>) -> String {
    let mut out = String::new();
    write_json(&mut out, value, 0, &mut String::new(), reveal);
    out
}

/// JSON text of `value` as it is shown: hidden characters written out, then escaped.
fn shown_json(value: &Value) -> String {
    escape(&crate::visible::visible(&value.to_string()))
}

/// `pointer` with `key` appended, as RFC 6901 spells it.
fn push_pointer(pointer: &mut String, key: &str) {
    pointer.push('/');
    pointer.push_str(&key.replace('~', "~0").replace('/', "~1"));
}

fn write_json(
    out: &mut String,
    value: &Value,
    depth: usize,
    pointer: &mut String,
    reveal: &Reveal<'_>,
) {
    let pad = |depth: usize| "  ".repeat(depth);
    match value {
        Value::Object(map) if !map.is_empty() => {
            out.push_str("{\n");
            for (i, (key, value)) in map.iter().enumerate() {
                out.push_str(&pad(depth + 1));
                out.push_str("<span class=\"j-key\">");
                out.push_str(&shown_json(&Value::String(key.clone())));
                out.push_str("</span>: ");
                let len = pointer.len();
                push_pointer(pointer, key);
                write_json(out, value, depth + 1, pointer, reveal);
                pointer.truncate(len);
                if i + 1 < map.len() {
                    out.push(',');
                }
                out.push('\n');
            }
            out.push_str(&pad(depth));
            out.push('}');
        }
        Value::Array(items) if !items.is_empty() => {
            out.push_str("[\n");
            for (i, item) in items.iter().enumerate() {
                out.push_str(&pad(depth + 1));
                let len = pointer.len();
                push_pointer(pointer, &i.to_string());
                write_json(out, item, depth + 1, pointer, reveal);
                pointer.truncate(len);
                if i + 1 < items.len() {
                    out.push(',');
                }
                out.push('\n');
            }
            out.push_str(&pad(depth));
            out.push(']');
        }
        Value::String(text) if text.contains(crate::redact::MASK) => {
            write_masked(out, value, pointer, reveal);
        }
        Value::String(text) if text.chars().count() > FOLD_CHARS => write_folded(out, text),
        Value::String(_) => {
            out.push_str("<span class=\"j-str\">");
            out.push_str(&shown_json(value));
            out.push_str("</span>");
        }
        other => {
            out.push_str("<span class=\"j-lit\">");
            out.push_str(&escape(&other.to_string()));
            out.push_str("</span>");
        }
    }
}

/// A masked value: the mask (with a reveal button when the reader may reveal it), or the real
/// value where it was just revealed to them.
fn write_masked(out: &mut String, value: &Value, pointer: &str, reveal: &Reveal<'_>) {
    match reveal.revealed {
        Some((field, real)) if field == pointer => {
            out.push_str("<span class=\"j-revealed\" id=\"revealed\" title=\"revealed to you; recorded in the audit log\">");
            out.push_str(&shown_json(real));
            out.push_str("</span>");
        }
        _ => {
            out.push_str("<span class=\"j-redacted\">");
            out.push_str(&shown_json(value));
            out.push_str("</span>");
            if let Some(form) = reveal.form {
                out.push_str(&format!(
                    " <button type=\"submit\" form=\"{}\" name=\"field\" value=\"{}\" class=\"reveal\">reveal</button>",
                    escape(form),
                    escape(pointer)
                ));
            }
        }
    }
}

/// A long string, folded: its start, and the whole of it on request.
fn write_folded(out: &mut String, text: &str) {
    let start: String = text.chars().take(FOLD_CHARS / 2).collect();
    out.push_str("<details class=\"j-fold\"><summary><span class=\"j-str\">");
    let quoted = shown_json(&Value::String(start));
    out.push_str(quoted.strip_suffix("&quot;").unwrap_or(&quoted));
    out.push('…');
    out.push_str(&format!(
        "</span> <span class=\"j-note\">({} characters; show all)</span></summary><span class=\"j-str\">",
        text.chars().count()
    ));
    out.push_str(&shown_json(&Value::String(text.to_owned())));
    out.push_str("</span></details>");
}

/// Plain text as HTML, escaped, with each `http://` or `https://` word made a link (the outbox
/// shows a message's text part this way, so its links work).
pub fn linkify(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for (i, line) in text.split('\n').enumerate() {
        if i > 0 {
            out.push('\n');
        }
        for (j, word) in line.split(' ').enumerate() {
            if j > 0 {
                out.push(' ');
            }
            if word.starts_with("http://") || word.starts_with("https://") {
                let word = escape(word);
                out.push_str(&format!("<a href=\"{word}\">{word}</a>"));
            } else {
                out.push_str(&escape(word));
            }
        }
    }
    out
}

/// HTML-escapes text for element content and quoted attributes.
pub fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn arguments_html_escapes_keys_and_values_and_folds_long_strings() {
        let html = arguments_html(&json!({
            "<b>": "<script>alert(1)</script>",
            "long": "x".repeat(500),
            "n": [1, null, true],
        }));
        assert!(!html.contains("<script>"), "{html}");
        assert!(!html.contains("<b>"), "{html}");
        assert!(
            html.contains("&lt;script&gt;alert(1)&lt;/script&gt;"),
            "{html}"
        );
        assert!(html.contains("<details class=\"j-fold\">"), "{html}");
        assert!(html.contains("(500 characters; show all)"), "{html}");
    }

    #[test]
    fn countdowns_read_naturally() {
        assert_eq!(time_left(0), "expired");
        assert_eq!(time_left(42), "42 s left");
        assert_eq!(time_left(545), "9 min 5 s left");
        assert_eq!(time_left(7260), "2 h 1 min left");
        assert_eq!(
            short_time("2026-11-25T14:05:12.345Z"),
            "2026-11-25 14:05:12 UTC"
        );
    }
}
