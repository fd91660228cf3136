//! The digest: when calls park faster than one message a minute per recipient, the first call
//! gets its own message and the others of that minute are listed in one message (View links
//! only), rendered when it is sent so it lists every call added until then, each with its state
//! at that moment.

use askama::Template;

use crate::domain::CallStatus;
use crate::store::CallRow;

struct DigestCall {
    agent: String,
    upstream: String,
    tool: String,
    state: String,
    url: String,
}

struct Digest {
    headline: String,
    calls: Vec<DigestCall>,
}

#[derive(Template)]
#[template(path = "email/digest.txt")]
struct DigestText<'a> {
    d: &'a Digest,
}

#[derive(Template)]
#[template(path = "email/digest.html")]
struct DigestHtml<'a> {
    d: &'a Digest,
}

/// A digest's subject, text and HTML for `calls`.
pub fn render(
    calls: &[CallRow],
    public_url: &str,
) -> Result<(String, String, String), askama::Error> {
    let base = public_url.trim_end_matches('/');
    let headline = match calls.len() {
        1 => "1 more call is waiting for a decision".to_owned(),
        n => format!("{n} more calls are waiting for a decision"),
    };
    let digest = Digest {
        calls: calls
            .iter()
            .map(|row| {
                let state = if row.status == CallStatus::Pending {
                    format!("waiting, expires {} UTC", row.expires_at.clock())
                } else {
                    format!("now {}", row.status)
                };
                DigestCall {
                    agent: super::short_line(&row.agent),
                    upstream: super::short_line(&row.upstream),
                    tool: super::short_line(&row.tool),
                    state,
                    url: format!("{base}/calls/{}", row.id),
                }
            })
            .collect(),
        headline,
    };
    let subject = format!("[Airlock] {}", digest.headline);
    Ok((
        subject,
        DigestText { d: &digest }.render()?,
        DigestHtml { d: &digest }.render()?,
    ))
}
