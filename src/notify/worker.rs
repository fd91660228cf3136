//! The outbox worker: claims due messages, sends them over SMTP (lettre), marks them sent, or
//! schedules a retry with exponential backoff (2 s doubling to 10 min; given up after
//! [`MAX_ATTEMPTS`]). Every instance runs one; claims keep them from sending a message twice.

use std::sync::Arc;
use std::time::Duration;

use lettre::message::{Mailbox, MultiPart};
use lettre::transport::smtp::authentication::Credentials;
use lettre::{AsyncSmtpTransport, AsyncTransport, Message, Tokio1Executor};
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

use crate::config::EmailConfig;
use crate::store::{ClaimedMail, MailPurpose, Store};

/// How often the outbox is checked when nothing wakes the worker.
const IDLE_POLL: Duration = Duration::from_secs(1);
/// Messages claimed at once.
const BATCH: u32 = 20;
/// After this many failed attempts a message is marked `failed`.
const MAX_ATTEMPTS: i64 = 12;
/// A message claimed this long ago and never marked was being sent by a worker that died.
const STALE_CLAIM: time::Duration = time::Duration::minutes(2);

#[derive(Debug, thiserror::Error)]
pub enum MailError {
    #[error("invalid email.smtp_url: {0}")]
    Url(#[source] lettre::transport::smtp::Error),
    #[error("invalid email.from {0:?}: {1}")]
    From(String, #[source] lettre::address::AddressError),
    #[error(
        "email.password is set but email.smtp_url names no user; write it as smtp+starttls://USER@HOST:587"
    )]
    NoUser,
    #[error("cannot read email.password_file {0}: {1}")]
    PasswordFile(std::path::PathBuf, #[source] std::io::Error),
}

/// `smtp_url` in lettre's terms: `smtp+starttls://HOST[:PORT]` is lettre's
/// `smtp://HOST[:PORT]?tls=required`; the other forms are lettre's own.
fn lettre_url(smtp_url: &str) -> String {
    match smtp_url.strip_prefix("smtp+starttls://") {
        Some(rest) if rest.contains('?') => format!("smtp://{rest}&tls=required"),
        Some(rest) => format!("smtp://{rest}?tls=required"),
        None => smtp_url.to_owned(),
    }
}

/// The SMTP side: a lettre transport and the sender address.
#[derive(Clone)]
pub struct Mailer {
    transport: AsyncSmtpTransport<Tokio1Executor>,
    from: Mailbox,
}

impl Mailer {
    /// The mailer for `config`; `None` when it names no SMTP server (mail stays in the outbox).
    pub fn new(config: &EmailConfig) -> Result<Option<Self>, MailError> {
        let Some(smtp_url) = &config.smtp_url else {
            return Ok(None);
        };
        let url = lettre_url(smtp_url.expose());
        let mut builder = AsyncSmtpTransport::<Tokio1Executor>::from_url(&url)
            .map_err(MailError::Url)?
            .timeout(Some(Duration::from_secs(config.timeout)));
        let password = match (&config.password, &config.password_file) {
            (Some(password), _) => Some(password.expose().to_owned()),
            (None, Some(file)) => Some(
                std::fs::read_to_string(file)
                    .map_err(|e| MailError::PasswordFile(file.clone(), e))?
                    .lines()
                    .next()
                    .unwrap_or_default()
                    .to_owned(),
            ),
            (None, None) => None,
        };
        if let Some(password) = password {
            let user = url::Url::parse(&url)
                .ok()
                .map(|u| {
                    percent_encoding::percent_decode_str(u.username())
                        .decode_utf8_lossy()
                        .into_owned()
                })
                .filter(|user| !user.is_empty())
                .ok_or(MailError::NoUser)?;
            builder = builder.credentials(Credentials::new(user, password));
        }
        let from = config
            .from
            .parse()
            .map_err(|e| MailError::From(config.from.clone(), e))?;
        Ok(Some(Self {
            transport: builder.build(),
            from,
        }))
    }

    /// Connects and greets the server (with TLS and authentication as configured), for
    /// `airlock check`; the error says in plain words what went wrong.
    pub async fn test_connection(&self) -> Result<(), String> {
        match self.transport.test_connection().await {
            Ok(true) => Ok(()),
            Ok(false) => Err("the SMTP server did not accept the connection".to_owned()),
            Err(e) => Err(explain(&e)),
        }
    }

    async fn send(&self, mail: &ClaimedMail) -> Result<(), Failure> {
        let to: Mailbox = mail.recipient.parse().map_err(|e| Failure {
            why: format!("bad recipient {:?}: {e}", mail.recipient),
            permanent: true,
        })?;
        let builder = Message::builder()
            .from(self.from.clone())
            .to(to)
            .subject(&mail.subject);
        let message = match &mail.html {
            Some(html) => builder.multipart(MultiPart::alternative_plain_html(
                mail.body.clone(),
                html.clone(),
            )),
            None => builder.body(mail.body.clone()),
        }
        .map_err(|e| Failure {
            why: format!("cannot build the message: {e}"),
            permanent: true,
        })?;
        self.transport
            .send(message)
            .await
            .map(|_| ())
            .map_err(|e| Failure {
                why: explain(&e),
                permanent: e.is_permanent(),
            })
    }
}

/// Why a message was not sent, and whether trying again could help.
struct Failure {
    why: String,
    permanent: bool,
}

/// SMTP errors in plain words, with lettre's own text.
fn explain(e: &lettre::transport::smtp::Error) -> String {
    let text = e.to_string();
    let hint = if e.is_permanent() && (text.contains("535") || text.contains("534")) {
        "the server refused the user name or password"
    } else if e.is_permanent() {
        "the server refused the message"
    } else if e.is_transient() {
        "the server asked to try later"
    } else if e.is_timeout() {
        "the server did not answer in time"
    } else if e.is_tls() || text.contains("corrupt message") || text.contains("InvalidContentType")
    {
        "TLS failed: smtps:// needs a port that starts with TLS (465), smtp+starttls:// one that \
         upgrades (587); is the port for the other one?"
    } else if text.contains("Connection refused") {
        "nothing listens at that host and port (wrong port, or the server is down)"
    } else {
        "cannot reach the SMTP server"
    };
    format!("{hint}: {e}")
}

/// The backoff after `attempts` failed sends: 2 s, 4 s, 8 s, ... at most 10 min.
fn backoff(attempts: i64) -> time::Duration {
    let exponent = u32::try_from(attempts.clamp(1, 20) - 1).unwrap_or(0);
    let secs = 2i64.saturating_mul(1i64 << exponent.min(20)).min(600);
    time::Duration::seconds(secs)
}

/// A message as it leaves: a digest's list made now, decision links minted now (see
/// [`super::links`]; they exist from here on, and only in the message).
pub async fn prepare(
    store: &Store,
    public_url: &str,
    mut mail: ClaimedMail,
    minting: super::links::Minting,
) -> Result<ClaimedMail, super::links::IssueError> {
    let purpose = mail.kind.as_deref().and_then(MailPurpose::parse);
    if purpose == Some(MailPurpose::Digest) {
        let calls = store.digest_calls(&mail.id).await?;
        match super::digest::render(&calls, public_url) {
            Ok((subject, body, html)) => {
                mail.subject = subject;
                mail.body = body;
                mail.html = Some(html);
            }
            Err(e) => tracing::error!(error = %e, "cannot render a digest; it goes out as stored"),
        }
    }
    if let Some(slot) = mail.link_slot.clone() {
        let slot = super::links::LinkSlot::from_stored(slot);
        let mut html = mail.html.take().unwrap_or_default();
        let bodies = [&mut mail.body, &mut html];
        match (purpose, &mail.call_id) {
            (Some(MailPurpose::Password), _) => {
                super::password::complete(store, &mail.recipient, (&slot, minting), bodies).await?;
            }
            (_, Some(call)) => {
                let at = (&slot, minting);
                super::links::complete(store, public_url, call, &mail.recipient, at, bodies)
                    .await?;
            }
            _ => {}
        }
        mail.html = (!html.is_empty()).then_some(html);
    }
    Ok(mail)
}

/// Sends the outbox until `stop`. `claimer` names this process in its claims (unique per
/// process); `wake` is notified when messages are queued; links in messages point at
/// `public_url`.
pub fn spawn(
    store: Store,
    mailer: Mailer,
    claimer: String,
    public_url: String,
    wake: Arc<Notify>,
    stop: CancellationToken,
) {
    let worker = Worker {
        store,
        mailer,
        claimer,
        public_url,
    };
    tokio::spawn(async move {
        let mut failing = false;
        loop {
            if let Err(e) = worker
                .store
                .reclaim_stale_mail(time::OffsetDateTime::now_utc() - STALE_CLAIM)
                .await
            {
                tracing::debug!(error = %e, "cannot reclaim stale emails");
            }
            let claimed = match worker.store.claim_mail(&worker.claimer, BATCH).await {
                Ok(claimed) => claimed,
                Err(e) => {
                    if !failing {
                        tracing::warn!(error = %crate::telemetry::error_chain(&e), "cannot read the outbox; retrying");
                    }
                    failing = true;
                    Vec::new()
                }
            };
            let full = claimed.len() == BATCH as usize;
            for mail in claimed {
                failing = false;
                worker.deliver(mail).await;
            }
            if full {
                continue;
            }
            tokio::select! {
                () = wake.notified() => {}
                () = tokio::time::sleep(IDLE_POLL) => {}
                () = stop.cancelled() => return,
            }
        }
    });
}

/// One instance's sender of the outbox.
struct Worker {
    store: Store,
    mailer: Mailer,
    /// This process, as its claims name it.
    claimer: String,
    public_url: String,
}

impl Worker {
    /// Sends one claimed message with its links made now, and records how it went (sent, to be
    /// retried with backoff, or given up).
    async fn deliver(&self, mail: ClaimedMail) {
        let (store, claimer) = (&self.store, &self.claimer);
        // A batch can take long to send; a message whose claim went stale meanwhile was
        // reclaimed by another worker, and is theirs now.
        match store.renew_mail_claim(&mail.id, claimer).await {
            Ok(true) => {}
            Ok(false) => return,
            Err(e) => {
                tracing::debug!(error = %e, "cannot renew an email claim; leaving it");
                return;
            }
        }
        let (id, attempts) = (mail.id.clone(), mail.attempts);
        let sending = super::links::Minting::Sending;
        let mail = match prepare(store, &self.public_url, mail, sending).await {
            Ok(mail) => mail,
            Err(e) => {
                let why = crate::telemetry::error_chain(&e);
                tracing::warn!(error = %why, "cannot make an email's links; will retry");
                let retry = time::OffsetDateTime::now_utc() + backoff(attempts);
                self.failed(&id, &why, Some(retry)).await;
                return;
            }
        };
        match self.mailer.send(&mail).await {
            Ok(()) => {
                tracing::info!(to = %mail.recipient, "email sent");
                if let Err(e) = store.mark_mail_sent(&mail.id, claimer).await {
                    tracing::warn!(error = %e, "sent an email but cannot mark it; it may be sent again");
                }
            }
            Err(failure) => {
                let retry = (!failure.permanent && mail.attempts < MAX_ATTEMPTS)
                    .then(|| time::OffsetDateTime::now_utc() + backoff(mail.attempts));
                tracing::warn!(to = %mail.recipient, attempt = mail.attempts, error = %failure.why, "email not sent; {}", if retry.is_some() { "will retry" } else { "giving up" });
                self.failed(&mail.id, &failure.why, retry).await;
            }
        }
    }

    async fn failed(&self, id: &str, why: &str, retry: Option<time::OffsetDateTime>) {
        if let Err(e) = self
            .store
            .mark_mail_failed(id, &self.claimer, why, retry)
            .await
        {
            tracing::warn!(error = %e, "cannot record a failed email");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_from_two_seconds_to_ten_minutes() {
        assert_eq!(backoff(1), time::Duration::seconds(2));
        assert_eq!(backoff(2), time::Duration::seconds(4));
        assert_eq!(backoff(5), time::Duration::seconds(32));
        assert_eq!(backoff(30), time::Duration::seconds(600));
    }
}
