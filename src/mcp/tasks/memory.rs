//! What the MCP face keeps of tasks in this process's memory (never in the store): results of
//! calls run for a task until they are taken, and who created each of the upstreams' own tasks.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use serde_json::{Value, json};

/// Results held for tasks at most (each needed an approval); beyond, the soonest to expire goes.
const KEPT_RESULTS: usize = 10_000;

/// Results of calls run for a task in this process, until their `tasks/result` takes them (once)
/// or their task's lifetime ends. Never stored.
#[derive(Default)]
pub struct TaskResults(Mutex<HashMap<String, (Value, Instant)>>);

impl TaskResults {
    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, (Value, Instant)>> {
        self.0
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    pub(super) fn keep(&self, task: &str, response: Value, until: Instant) {
        let mut results = self.lock();
        let now = Instant::now();
        results.retain(|_, (_, until)| *until > now);
        if results.len() >= KEPT_RESULTS
            && let Some(soonest) = results
                .iter()
                .min_by_key(|(_, (_, until))| *until)
                .map(|(task, _)| task.clone())
        {
            results.remove(&soonest);
        }
        results.insert(task.to_owned(), (response, until));
    }

    pub(super) fn take(&self, task: &str) -> Option<Value> {
        self.lock()
            .remove(task)
            .filter(|(_, until)| *until > Instant::now())
            .map(|(response, _)| response)
    }
}

/// The upstream's own tasks that agents created through Airlock, and which token created each:
/// only that token may reach one (`tasks/get`, `tasks/result`, `tasks/cancel`), and `tasks/list`
/// answers show each token only its own. Kept in this process (sessions live in one anyway);
/// a task Airlock did not see created is reachable by nobody.
#[derive(Default)]
pub struct UpstreamTasks(Mutex<HashMap<(String, String), (String, Instant)>>);

/// How long Airlock remembers who created an upstream's task, and how many it remembers.
const UPSTREAM_TASK_MEMORY: Duration = Duration::from_secs(24 * 3600);
const UPSTREAM_TASKS: usize = 100_000;

impl UpstreamTasks {
    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<(String, String), (String, Instant)>> {
        self.0
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Notes the task a forwarded `tools/call` answered with, if it did.
    pub fn record(&self, upstream: &str, token_sha256: &str, response: &Value) {
        let Some(task) = crate::jsonrpc::pointer(response, "/result/task/taskId")
            .or_else(|| {
                (crate::jsonrpc::pointer(response, "/result/resultType") == Some(&json!("task")))
                    .then(|| crate::jsonrpc::pointer(response, "/result/taskId"))
                    .flatten()
            })
            .and_then(Value::as_str)
        else {
            return;
        };
        let mut tasks = self.lock();
        let now = Instant::now();
        tasks.retain(|_, (_, at)| now.duration_since(*at) < UPSTREAM_TASK_MEMORY);
        if tasks.len() < UPSTREAM_TASKS {
            tasks.insert(
                (upstream.to_owned(), task.to_owned()),
                (token_sha256.to_owned(), now),
            );
        }
    }

    pub(super) fn owned_by(&self, upstream: &str, task: &str, token_sha256: &str) -> bool {
        self.lock()
            .get(&(upstream.to_owned(), task.to_owned()))
            .is_some_and(|(owner, _)| owner == token_sha256)
    }

    /// Leaves out of an upstream's `tasks/list` answer the tasks `token_sha256` did not create.
    pub fn filter_list(&self, upstream: &str, token_sha256: &str, response: &mut Value) {
        let Some(Value::Array(listed)) = crate::jsonrpc::pointer_mut(response, "/result/tasks")
        else {
            return;
        };
        listed.retain(|task| {
            task.get("taskId")
                .and_then(Value::as_str)
                .is_some_and(|id| self.owned_by(upstream, id, token_sha256))
        });
    }
}
