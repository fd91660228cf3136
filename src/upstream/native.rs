//! Whether a stdio upstream speaks 2026-07-28 itself, and the child that says so.
//!
//! The question is put by a probe: a child opened with `server/discover` (see `link::Opening`),
//! started when the first 2026-07-28 request comes. The probe runs in a task of its own, so a
//! client that hangs up meanwhile cannot leave its child behind, and concurrent first requests
//! wait for the same probe. A server that answers without listing the revision does not speak
//! it, for good; one that stays silent or goes away is asked again a minute later (a slow first
//! start, such as `npx` fetching a package, is not taken for a no).

use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use futures_util::FutureExt;
use futures_util::future::{BoxFuture, Shared};

use super::Connection;

/// How long an unsure probe stands before the next 2026-07-28 request asks again.
const REPROBE_AFTER: Duration = Duration::from_secs(60);

/// What a probe found.
#[derive(Clone)]
pub(super) enum Verdict {
    /// It speaks 2026-07-28; the probe's child, when it is kept.
    Speaks(Option<Connection>),
    /// It answered, without that revision.
    Not,
    /// It did not answer (silent, or gone).
    Unsure,
}

enum Probe {
    Unknown,
    Running(Shared<BoxFuture<'static, Verdict>>),
    Known(Verdict, Instant),
}

/// The probe of one upstream.
pub(super) struct NativeProbe(Mutex<Probe>);

impl Default for NativeProbe {
    fn default() -> Self {
        Self(Mutex::new(Probe::Unknown))
    }
}

impl NativeProbe {
    fn lock(&self) -> MutexGuard<'_, Probe> {
        self.0.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// The verdict, probing with the child `open` makes when there is none (or an unsure one
    /// has stood long enough). A child that speaks is kept when `keep`, else stopped.
    pub(super) async fn verdict(
        &self,
        upstream: &Arc<str>,
        keep: bool,
        open: impl FnOnce() -> Connection,
    ) -> Verdict {
        let running = {
            let mut probe = self.lock();
            let joined = match &*probe {
                Probe::Known(Verdict::Unsure, at) if at.elapsed() >= REPROBE_AFTER => None,
                Probe::Known(verdict, _) => return verdict.clone(),
                Probe::Running(running) => Some(running.clone()),
                Probe::Unknown => None,
            };
            joined.unwrap_or_else(|| {
                let running = start(upstream.clone(), keep, open());
                *probe = Probe::Running(running.clone());
                running
            })
        };
        self.settle(running).await
    }

    /// Waits for the running probe and records its verdict (whoever gets there first: the
    /// caller that started it may have gone).
    async fn settle(&self, running: Shared<BoxFuture<'static, Verdict>>) -> Verdict {
        let verdict = running.await;
        let mut probe = self.lock();
        if matches!(*probe, Probe::Running(_)) {
            *probe = Probe::Known(verdict.clone(), Instant::now());
        }
        verdict
    }
}

/// Waits, in a task of its own, for `child` to come up speaking 2026-07-28.
fn start(upstream: Arc<str>, keep: bool, child: Connection) -> Shared<BoxFuture<'static, Verdict>> {
    let probe = tokio::spawn(async move {
        match child.ready().await {
            Ok(_) => {
                tracing::info!(%upstream, "the upstream speaks 2026-07-28: that revision's clients get children of their own, spoken to in it");
                if keep {
                    Verdict::Speaks(Some(child))
                } else {
                    child.stop();
                    Verdict::Speaks(None)
                }
            }
            Err(e) => {
                child.stop();
                let answered = child.probe_answered();
                tracing::info!(%upstream, cause = %e, answered, "2026-07-28 clients are translated into the handshake era for this upstream");
                if answered {
                    Verdict::Not
                } else {
                    Verdict::Unsure
                }
            }
        }
    });
    async move { probe.await.unwrap_or(Verdict::Unsure) }
        .boxed()
        .shared()
}
