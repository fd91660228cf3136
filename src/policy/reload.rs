//! Hot reload: the current policy of one upstream, replaced when its file changes.
//!
//! A [`PolicyHandle`] always holds a valid policy. At start-up a bad file is an error (the process
//! stops, DESIGN.md "Policies load strictly"); later, a broken edit keeps the last good policy, is
//! logged once, and shows as [`PolicyStatus::Stale`] until the file is good again.
//!
//! Changes are found by polling the file's content (a SHA-256 of its bytes), not its mtime: mtimes
//! can be coarse enough that two saves in one tick look alike, and a same-length edit would pass a
//! size check. A new content is applied only once two consecutive polls read it the same, so a
//! file caught mid-write is never loaded: an editor that truncates and then writes, or a TOML file
//! cut after a complete line (which would parse, minus its later rules). The cost is one poll
//! interval of delay. An unreadable file (for instance between an editor's delete and rename) is
//! treated like a broken edit, after the same settling.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError, RwLock};
use std::time::Duration;

use sha2::{Digest, Sha256};
use tokio::sync::watch;
use tokio::task::JoinHandle;

use super::error::PolicyError;
use super::model::Policy;

/// The shortest poll interval [`PolicyHandle::spawn_watcher`] uses.
const MIN_POLL_INTERVAL: Duration = Duration::from_millis(10);

/// The current policy of one upstream. Cheap to clone: clones share the policy and its status.
#[derive(Debug, Clone)]
pub struct PolicyHandle {
    inner: Arc<Inner>,
}

/// Whether the policy in force is the policy file's current content.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PolicyStatus {
    Ok,
    /// The file was changed (or became unreadable) and the change was refused; the last good
    /// policy stays in force. `error` is the full [`PolicyError`] line.
    Stale {
        error: String,
    },
}

/// What one [`PolicyHandle::reload_if_changed`] did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ReloadOutcome {
    /// Nothing new since the last change was handled (also: the upstream has no policy file).
    Unchanged,
    /// The file differs from the last poll; it is applied if the next poll reads the same.
    Settling,
    /// The new content is in force.
    Reloaded,
    /// The file reads as the content in force again (a broken edit was undone).
    Restored,
    /// The change was refused; the last good policy stays. Holds the error line.
    Rejected(String),
}

#[derive(Debug)]
struct Inner {
    path: Option<PathBuf>,
    current: RwLock<Arc<Policy>>,
    watch: Mutex<WatchState>,
}

#[derive(Debug)]
struct WatchState {
    /// The content of the policy in force.
    loaded: Observation,
    /// The observation the current status describes: `loaded`, or a refused one.
    handled: Observation,
    /// What the previous poll saw.
    previous: Option<Observation>,
    status: PolicyStatus,
}

/// What a poll found at the policy path.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Observation {
    Content([u8; 32]),
    Unreadable(String),
}

impl PolicyHandle {
    /// Loads the policy at `path`, or the built-in `require_approval` default when there is none.
    /// Fails on a missing or invalid file: start-up must stop rather than run without the policy.
    pub fn load(path: Option<PathBuf>) -> Result<Self, PolicyError> {
        let (policy, loaded) = match &path {
            None => (
                Policy::require_approval_by_default(),
                // Never compared: without a path there is nothing to poll.
                Observation::Content([0; 32]),
            ),
            Some(path) => {
                let bytes = std::fs::read(path).map_err(|cause| PolicyError::Read {
                    path: path.clone(),
                    cause,
                })?;
                let digest = sha256(&bytes);
                (
                    Policy::from_bytes(path, bytes)?,
                    Observation::Content(digest),
                )
            }
        };
        Ok(Self {
            inner: Arc::new(Inner {
                path,
                current: RwLock::new(Arc::new(policy)),
                watch: Mutex::new(WatchState {
                    handled: loaded.clone(),
                    loaded,
                    previous: None,
                    status: PolicyStatus::Ok,
                }),
            }),
        })
    }

    /// The policy in force; callers keep the `Arc` for the whole call they judge with it.
    pub fn current(&self) -> Arc<Policy> {
        let current = self
            .inner
            .current
            .read()
            .unwrap_or_else(PoisonError::into_inner);
        Arc::clone(&current)
    }

    /// The policy file, or `None` for the built-in default.
    pub fn path(&self) -> Option<&Path> {
        self.inner.path.as_deref()
    }

    /// The policy in force, for the audit log: its file and the SHA-256 of the content loaded,
    /// or the built-in default.
    pub fn describe(&self) -> String {
        let Some(path) = self.path() else {
            return "the built-in default (require_approval)".to_owned();
        };
        match &self.watch().loaded {
            Observation::Content(digest) => {
                let hex: String = digest.iter().map(|b| format!("{b:02x}")).collect();
                format!("{}, SHA-256 {hex}", path.display())
            }
            Observation::Unreadable(error) => format!("{}: {error}", path.display()),
        }
    }

    /// Whether the policy in force matches the file (for `/readyz` and the dashboard).
    pub fn status(&self) -> PolicyStatus {
        self.watch().status.clone()
    }

    /// Polls the file once and applies a change that has settled (see the module docs). Blocking
    /// file I/O: async callers run it on a blocking thread, as [`Self::spawn_watcher`] does.
    pub fn reload_if_changed(&self) -> ReloadOutcome {
        let Some(path) = self.inner.path.as_deref() else {
            return ReloadOutcome::Unchanged;
        };
        // Held for the whole poll so that two concurrent polls cannot interleave their steps.
        let mut watch = self.watch();
        let read = std::fs::read(path).map_err(|cause| PolicyError::Read {
            path: path.to_path_buf(),
            cause,
        });
        let observation = match &read {
            Ok(bytes) => Observation::Content(sha256(bytes)),
            Err(error) => Observation::Unreadable(error.to_string()),
        };
        let seen_before =
            watch.previous.replace(observation.clone()).as_ref() == Some(&observation);
        if observation == watch.handled {
            return ReloadOutcome::Unchanged;
        }
        if !seen_before {
            return ReloadOutcome::Settling;
        }
        watch.handled = observation.clone();

        if observation == watch.loaded {
            tracing::info!(path = %path.display(), "policy file is back to the policy in force");
            watch.status = PolicyStatus::Ok;
            return ReloadOutcome::Restored;
        }
        match read.and_then(|bytes| Policy::from_bytes(path, bytes)) {
            Ok(policy) => {
                *self
                    .inner
                    .current
                    .write()
                    .unwrap_or_else(PoisonError::into_inner) = Arc::new(policy);
                watch.loaded = observation;
                watch.status = PolicyStatus::Ok;
                tracing::info!(path = %path.display(), "policy reloaded");
                ReloadOutcome::Reloaded
            }
            Err(error) => {
                let error = error.to_string();
                tracing::warn!(%error, "policy change refused; the last good policy stays in force");
                watch.status = PolicyStatus::Stale {
                    error: error.clone(),
                };
                ReloadOutcome::Rejected(error)
            }
        }
    }

    /// Polls the file every `interval` (at least 10 ms) until `shutdown` turns `true` or its
    /// sender is dropped, telling `report` of every change applied, refused or undone. Returns at
    /// once for an upstream without a policy file.
    pub fn spawn_watcher(
        self,
        interval: Duration,
        mut shutdown: watch::Receiver<bool>,
        report: impl Fn(&Self, &ReloadOutcome) + Send + 'static,
    ) -> JoinHandle<()> {
        tokio::spawn(async move {
            if self.inner.path.is_none() {
                return;
            }
            let mut ticks = tokio::time::interval(interval.max(MIN_POLL_INTERVAL));
            ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                if *shutdown.borrow_and_update() {
                    return;
                }
                tokio::select! {
                    _ = ticks.tick() => {
                        let handle = self.clone();
                        match tokio::task::spawn_blocking(move || handle.reload_if_changed()).await {
                            Ok(ReloadOutcome::Unchanged | ReloadOutcome::Settling) => {}
                            Ok(outcome) => report(&self, &outcome),
                            Err(error) => tracing::error!(%error, "policy reload task failed"),
                        }
                    }
                    changed = shutdown.changed() => {
                        if changed.is_err() {
                            return;
                        }
                    }
                }
            }
        })
    }

    fn watch(&self) -> MutexGuard<'_, WatchState> {
        self.inner
            .watch
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }
}

fn sha256(bytes: &[u8]) -> [u8; 32] {
    Sha256::digest(bytes).into()
}

#[cfg(test)]
mod tests {
    use std::fs;

    use super::*;
    use crate::policy::{DefaultAction, Rule};

    const GOOD: &str = r#"{"version": "1", "default": "deny", "tools": {"get_chats": {}}}"#;
    const BETTER: &str =
        r#"{"version": "1", "default": "deny", "tools": {"get_chats": {}, "send_message": {}}}"#;
    const BROKEN: &str =
        r#"{"version": "1", "default": "deny", "tools": {"get_chats": {"acton": "deny"}}}"#;

    fn handle_for(dir: &tempfile::TempDir, name: &str, text: &str) -> (PolicyHandle, PathBuf) {
        let path = dir.path().join(name);
        write(&path, text);
        match PolicyHandle::load(Some(path.clone())) {
            Ok(handle) => (handle, path),
            Err(error) => panic!("{error}"),
        }
    }

    fn write(path: &Path, text: &str) {
        if let Err(error) = fs::write(path, text) {
            panic!("writing {}: {error}", path.display());
        }
    }

    fn temp_dir() -> tempfile::TempDir {
        match tempfile::tempdir() {
            Ok(dir) => dir,
            Err(error) => panic!("{error}"),
        }
    }

    fn lists(handle: &PolicyHandle, tool: &str) -> bool {
        handle.current().rule_for(tool).listed
    }

    #[test]
    fn without_a_file_the_default_requires_approval_and_never_changes() {
        let handle = match PolicyHandle::load(None) {
            Ok(handle) => handle,
            Err(error) => panic!("{error}"),
        };
        assert_eq!(
            handle.current().default_action(),
            DefaultAction::RequireApproval
        );
        assert!(matches!(
            handle.current().rule_for("anything").rule,
            Rule::RequireApproval(_)
        ));
        assert_eq!(handle.reload_if_changed(), ReloadOutcome::Unchanged);
        assert_eq!(handle.path(), None);
    }

    #[test]
    fn a_bad_file_at_start_up_is_an_error() {
        let dir = temp_dir();
        let path = dir.path().join("telegram.json");
        write(&path, BROKEN);
        match PolicyHandle::load(Some(path)) {
            Err(error) => assert!(error.to_string().contains("tools.get_chats"), "{error}"),
            Ok(_) => panic!("a broken policy loaded"),
        }
        let missing = PolicyHandle::load(Some(dir.path().join("missing.json")));
        assert!(matches!(missing, Err(PolicyError::Read { .. })));
    }

    #[test]
    fn a_broken_edit_keeps_the_last_good_policy_until_it_is_fixed() {
        let dir = temp_dir();
        let (handle, path) = handle_for(&dir, "telegram.json", GOOD);
        assert_eq!(handle.reload_if_changed(), ReloadOutcome::Unchanged);

        write(&path, BROKEN);
        assert_eq!(handle.reload_if_changed(), ReloadOutcome::Settling);
        match handle.reload_if_changed() {
            ReloadOutcome::Rejected(error) => assert!(error.contains("acton"), "{error}"),
            other => panic!("expected a rejection, got {other:?}"),
        }
        assert!(lists(&handle, "get_chats"), "the last good policy stays");
        match handle.status() {
            PolicyStatus::Stale { error } => {
                assert!(error.contains("telegram.json: tools.get_chats"), "{error}")
            }
            PolicyStatus::Ok => panic!("status should be stale"),
        }
        // Refused once, not again on every poll.
        assert_eq!(handle.reload_if_changed(), ReloadOutcome::Unchanged);

        write(&path, BETTER);
        assert_eq!(handle.reload_if_changed(), ReloadOutcome::Settling);
        assert_eq!(handle.reload_if_changed(), ReloadOutcome::Reloaded);
        assert!(lists(&handle, "send_message"));
        assert_eq!(handle.status(), PolicyStatus::Ok);
    }

    #[test]
    fn a_file_caught_mid_write_is_not_applied() {
        let dir = temp_dir();
        let first =
            "version = \"1\"\ndefault = \"allow\"\n[tools.delete_chat]\naction = \"deny\"\n";
        let (handle, path) = handle_for(&dir, "telegram.toml", first);
        assert!(lists(&handle, "delete_chat"));

        // An editor truncates, then writes: the empty file is seen, then the final content.
        write(&path, "");
        assert_eq!(handle.reload_if_changed(), ReloadOutcome::Settling);
        // A prefix that happens to parse (the deny rule not written yet) is seen once.
        write(&path, "version = \"1\"\ndefault = \"allow\"\n");
        assert_eq!(handle.reload_if_changed(), ReloadOutcome::Settling);
        let last = "version = \"1\"\ndefault = \"allow\"\n[tools.delete_chat]\naction = \"deny\"\nreason = \"no\"\n";
        write(&path, last);
        assert_eq!(handle.reload_if_changed(), ReloadOutcome::Settling);
        assert!(
            lists(&handle, "delete_chat"),
            "nothing half-written applied"
        );
        assert_eq!(handle.status(), PolicyStatus::Ok);

        assert_eq!(handle.reload_if_changed(), ReloadOutcome::Reloaded);
        assert_eq!(
            handle.current().rule_for("delete_chat").rule,
            &Rule::Deny {
                reason: Some("no".to_owned())
            }
        );
    }

    #[test]
    fn a_same_size_edit_is_noticed() {
        let dir = temp_dir();
        let (handle, path) = handle_for(&dir, "p.json", r#"{"version":"1","tools":{"aaaa":{}}}"#);
        write(&path, r#"{"version":"1","tools":{"bbbb":{}}}"#);
        assert_eq!(handle.reload_if_changed(), ReloadOutcome::Settling);
        assert_eq!(handle.reload_if_changed(), ReloadOutcome::Reloaded);
        assert!(lists(&handle, "bbbb"));
    }

    #[test]
    fn an_unreadable_file_is_stale_and_undoing_the_edit_restores_ok() {
        let dir = temp_dir();
        let (handle, path) = handle_for(&dir, "telegram.json", GOOD);
        if let Err(error) = fs::remove_file(&path) {
            panic!("{error}");
        }
        assert_eq!(handle.reload_if_changed(), ReloadOutcome::Settling);
        assert!(matches!(
            handle.reload_if_changed(),
            ReloadOutcome::Rejected(_)
        ));
        assert!(matches!(handle.status(), PolicyStatus::Stale { .. }));
        assert!(lists(&handle, "get_chats"));

        write(&path, GOOD);
        assert_eq!(handle.reload_if_changed(), ReloadOutcome::Settling);
        assert_eq!(handle.reload_if_changed(), ReloadOutcome::Restored);
        assert_eq!(handle.status(), PolicyStatus::Ok);
    }

    #[test]
    fn a_change_that_is_undone_before_it_settles_does_nothing() {
        let dir = temp_dir();
        let (handle, path) = handle_for(&dir, "telegram.json", GOOD);
        write(&path, BROKEN);
        assert_eq!(handle.reload_if_changed(), ReloadOutcome::Settling);
        write(&path, GOOD);
        assert_eq!(handle.reload_if_changed(), ReloadOutcome::Unchanged);
        assert_eq!(handle.reload_if_changed(), ReloadOutcome::Unchanged);
        assert_eq!(handle.status(), PolicyStatus::Ok);
    }

    #[tokio::test]
    async fn the_watcher_applies_edits_and_stops_on_shutdown() {
        let dir = temp_dir();
        let (handle, path) = handle_for(&dir, "telegram.json", GOOD);
        let (stop, stopped) = watch::channel(false);
        let watcher = handle
            .clone()
            .spawn_watcher(Duration::from_millis(10), stopped, |_, _| {});

        write(&path, BETTER);
        let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
        while !lists(&handle, "send_message") {
            assert!(tokio::time::Instant::now() < deadline, "edit not applied");
            tokio::time::sleep(Duration::from_millis(10)).await;
        }

        if stop.send(true).is_err() {
            panic!("watcher gone before shutdown");
        }
        match tokio::time::timeout(Duration::from_secs(10), watcher).await {
            Ok(Ok(())) => {}
            other => panic!("watcher did not stop: {other:?}"),
        }
    }
}
