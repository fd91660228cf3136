//! The bench's agents: `concurrency` rmcp sessions (Streamable HTTP, as agents' SDKs connect)
//! calling `echo` with arguments of their own, timed call by call.

use std::time::{Duration, Instant};

use rmcp::model::CallToolRequestParams;
use rmcp::service::RunningService;
use rmcp::transport::StreamableHttpClientTransport;
use rmcp::transport::streamable_http_client::StreamableHttpClientTransportConfig;
use rmcp::{RoleClient, ServiceExt};

pub type Fallible<T> = Result<T, Box<dyn std::error::Error + Send + Sync>>;

/// What one run of calls gave.
pub struct Run {
    pub calls: usize,
    pub elapsed: Duration,
    pub latencies: Vec<Duration>,
}

impl Run {
    pub fn rate(&self) -> f64 {
        self.calls as f64 / self.elapsed.as_secs_f64()
    }
}

/// Connected sessions to one endpoint, ready to call its echo tool.
pub struct Agents {
    clients: Vec<RunningService<RoleClient, ()>>,
    /// The tool's name there (a gateway may prefix it).
    tool: String,
}

impl Agents {
    /// `concurrency` sessions to `url` (with the bearer `token`) calling `tool`, each warmed up
    /// by a few calls.
    pub async fn connect(
        url: &str,
        token: Option<&str>,
        concurrency: usize,
        tool: &str,
    ) -> Fallible<Self> {
        let mut clients = Vec::with_capacity(concurrency);
        for _ in 0..concurrency {
            let mut config = StreamableHttpClientTransportConfig::with_uri(url.to_owned());
            if let Some(token) = token {
                config = config.auth_header(token.to_owned());
            }
            let client = ().serve(StreamableHttpClientTransport::from_config(config)).await?;
            for n in 0..5 {
                call(&client, tool, &format!("warm {n}")).await?;
            }
            clients.push(client);
        }
        Ok(Self {
            clients,
            tool: tool.to_owned(),
        })
    }

    /// About `calls` calls spread over the sessions, stopping early once `cap` has passed.
    pub async fn run(&self, calls: usize, cap: Duration) -> Fallible<Run> {
        let per_session = calls.div_ceil(self.clients.len()).max(1);
        let start = Instant::now();
        let deadline = start + cap;
        let mut sessions = tokio::task::JoinSet::new();
        for (s, client) in self.clients.iter().enumerate() {
            let peer = client.peer().clone();
            let tool = self.tool.clone();
            sessions.spawn(async move {
                let mut latencies = Vec::with_capacity(per_session);
                for n in 0..per_session {
                    if Instant::now() > deadline {
                        break;
                    }
                    let t = Instant::now();
                    let result = peer
                        .call_tool(params(&tool, &format!("session {s} call {n}")))
                        .await?;
                    latencies.push(t.elapsed());
                    if result.is_error == Some(true) {
                        return Err(format!("echo failed: {result:?}").into());
                    }
                }
                Ok::<_, Box<dyn std::error::Error + Send + Sync>>(latencies)
            });
        }
        let mut latencies = Vec::with_capacity(calls);
        while let Some(done) = sessions.join_next().await {
            latencies.extend(done??);
        }
        Ok(Run {
            calls: latencies.len(),
            elapsed: start.elapsed(),
            latencies,
        })
    }

    pub async fn close(self) {
        for client in self.clients {
            let _ = tokio::time::timeout(Duration::from_secs(5), client.cancel()).await;
        }
    }
}

fn params(tool: &str, message: &str) -> CallToolRequestParams {
    let mut arguments = serde_json::Map::new();
    arguments.insert("message".to_owned(), message.into());
    CallToolRequestParams::new(tool.to_owned()).with_arguments(arguments)
}

async fn call(client: &RunningService<RoleClient, ()>, tool: &str, message: &str) -> Fallible<()> {
    let result = client.call_tool(params(tool, message)).await?;
    if result.is_error == Some(true) {
        return Err(format!("echo failed: {result:?}").into());
    }
    Ok(())
}
