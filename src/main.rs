//! The `airlock` command line: parses arguments and calls into the library. Nothing else.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::{Parser, Subcommand};

use airlock::commands::{self, CommandError};

/// Airlock: an MCP gateway that lets a human decide on an agent's dangerous tool calls.
///
/// Agents connect to Airlock (http://HOST/mcp/UPSTREAM) instead of to their MCP servers; a
/// per-tool policy allows, denies or rate-limits each tool call. Start with `airlock demo`.
const EXAMPLES: &str = "\
Examples:
  airlock demo                                   try it: prints the URL, a token and a client command
  airlock check                                  validate ./airlock.toml and its policies
  TOKEN=$(airlock token create --agent claude)   a bearer token for an agent
  airlock user add alice@example.org --role approver
  airlock pending                                calls waiting for a decision
  airlock policy test --upstream telegram --tool export_session --expect park
  airlock tools diff                             tools whose definition changed (quarantined)
  airlock approve ID --reason \"checked\"          or: airlock reject ID --reason \"not now\"
  airlock serve --config /etc/airlock/airlock.toml";

#[derive(Parser)]
#[command(version, propagate_version = true, after_help = EXAMPLES)]
struct Cli {
    /// Config file (TOML); settings can be overridden by AIRLOCK_SECTION__KEY variables.
    #[arg(long, global = true, env = "AIRLOCK_CONFIG", default_value = airlock::config::DEFAULT_CONFIG_PATH)]
    config: PathBuf,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run everything locally with no setup: the gateway, a demo Telegram-like MCP server under a
    /// sample policy, and SQLite in ./airlock-demo. Prints the URL, an agent token and a client
    /// command to paste.
    Demo {
        /// Address to listen on.
        #[arg(long, default_value = "127.0.0.1:8080")]
        listen: SocketAddr,
        /// Folder for the demo's database, policy and upstream call log.
        #[arg(long, default_value = "airlock-demo")]
        data_dir: PathBuf,
    },
    /// Run the gateway from the config file (production).
    Serve,
    /// Validate the config and every policy, and explain the rule of each tool the upstreams
    /// offer; exit 1 on error.
    Check {
        /// Do not start the upstreams: check the files only.
        #[arg(long)]
        offline: bool,
    },
    /// Manage agent bearer tokens.
    Token {
        #[command(subcommand)]
        command: TokenCommand,
    },
    /// Manage reviewers (dashboard and API users) and their API tokens.
    User {
        #[command(subcommand)]
        command: UserCommand,
    },
    /// Tools whose definition changed since it was accepted (quarantined).
    Tools {
        #[command(subcommand)]
        command: ToolsCommand,
    },
    /// Questions about policies.
    Policy {
        #[command(subcommand)]
        command: PolicyCommand,
    },
    /// The audit log.
    Audit {
        #[command(subcommand)]
        command: AuditCommand,
    },
    /// List the calls waiting for a decision, newest first.
    Pending {
        /// Print a JSON array instead of a table.
        #[arg(long)]
        json: bool,
    },
    /// Approve a waiting call (one approval toward its rule's quorum).
    Approve {
        /// The call's id (from `airlock pending`).
        id: String,
        /// Why, for the history.
        #[arg(long)]
        reason: Option<String>,
        /// Record the decision as this user (who must be allowed to decide); default: `cli`.
        #[arg(long = "as", value_name = "EMAIL")]
        as_user: Option<String>,
    },
    /// Reject a waiting call; the agent is shown the reason.
    Reject {
        /// The call's id (from `airlock pending`).
        id: String,
        /// Why; the agent reads it.
        #[arg(long)]
        reason: String,
        /// Record the decision as this user (who must be allowed to decide); default: `cli`.
        #[arg(long = "as", value_name = "EMAIL")]
        as_user: Option<String>,
    },
    /// The demo MCP server (Telegram-like tools) on stdio; with --listen, on Streamable HTTP.
    DemoUpstream {
        /// Serve MCP Streamable HTTP at http://ADDR/mcp instead of stdio.
        #[arg(long)]
        listen: Option<SocketAddr>,
        /// Append a JSON line per tool call received to this file.
        #[arg(long, env = "AIRLOCK_DEMO_CALL_LOG")]
        call_log: Option<PathBuf>,
        /// A JSON object of tool names to descriptions that replace theirs, read at every
        /// tools/list (to play a server that rewrites a tool after it was accepted).
        #[arg(long, env = "AIRLOCK_DEMO_DESCRIPTIONS")]
        descriptions: Option<PathBuf>,
        /// Speak only the handshake-era revisions (up to 2025-11-25), as MCP servers built
        /// before 2026-07-28 do.
        #[arg(long)]
        handshake_only: bool,
    },
}

#[derive(Subcommand)]
enum TokenCommand {
    /// Create a bearer token for an agent (creating the agent if needed). Prints only the token,
    /// once: `TOKEN=$(airlock token create --agent claude)`.
    Create {
        /// The agent's name, shown in logs and to reviewers.
        #[arg(long)]
        agent: String,
    },
}

#[derive(Subcommand)]
enum AuditCommand {
    /// Walk the hash chain; exit 1 naming the first event that was edited, deleted, inserted or
    /// reordered. With --file, check an exported JSON-lines file instead, without the database.
    Verify {
        /// An export (`audit export --format jsonl`) to check offline.
        #[arg(long)]
        file: Option<PathBuf>,
        /// The hex Ed25519 public key the export's checkpoint must be signed with (default: the
        /// key of this config's `[audit] signing_key_file`).
        #[arg(long, requires = "file")]
        public_key: Option<String>,
        /// The export was filtered: its events have gaps in the chain by design; check them
        /// against the checkpoint's count and digest instead.
        #[arg(long, requires = "file")]
        partial: bool,
    },
    /// Make an Ed25519 key for signing exports: the key (hex) on stdout, its public key on
    /// stderr. Save it to the file `[audit] signing_key_file` names.
    Keygen,
    /// Write the audit log to stdout, oldest first, streamed (flat memory at any size).
    Export {
        /// jsonl (one JSON object per line) or csv.
        #[arg(long, default_value = "jsonl")]
        format: String,
        /// Events at or after this time (RFC 3339, or a day: 2026-11-25).
        #[arg(long)]
        since: Option<String>,
        /// Events before this time (RFC 3339, or a day: up to its end).
        #[arg(long)]
        until: Option<String>,
        #[arg(long)]
        upstream: Option<String>,
        #[arg(long)]
        tool: Option<String>,
        /// Events of calls made by this agent.
        #[arg(long)]
        agent: Option<String>,
    },
}

#[derive(Subcommand)]
enum ToolsCommand {
    /// List the quarantined tools and what changed in each.
    Diff {
        #[arg(long)]
        upstream: Option<String>,
    },
    /// Accept a quarantined tool's new definition (audited); agents see it again.
    Accept {
        upstream: String,
        tool: String,
        /// The digest `tools diff` showed: refuse if the tool changed again since.
        #[arg(long)]
        digest: Option<String>,
    },
}

#[derive(Subcommand)]
enum PolicyCommand {
    /// What the policy in force does with one call, and why: the verdict, the rule, each
    /// condition and the tool's risk (counters read as zero). With --expect, exit 1 when the
    /// verdict differs, for CI checks of policy edits.
    Test(commands::PolicyQuestion),
}

#[derive(Subcommand)]
enum UserCommand {
    /// Add a user. Roles: admin (everything), approver (decide calls), viewer (read only).
    /// Prints a generated dashboard password alone on stdout, once, unless --password-stdin.
    Add {
        email: String,
        #[arg(long)]
        role: String,
        /// Read the dashboard password from the first line of stdin instead of generating one.
        #[arg(long)]
        password_stdin: bool,
    },
    /// Set a new dashboard password (ends the user's browser sessions). Prints a generated one
    /// alone on stdout, once, unless --password-stdin.
    Password {
        email: String,
        /// Read the password from the first line of stdin instead of generating one.
        #[arg(long)]
        password_stdin: bool,
    },
    /// Create a personal API token for a user. Prints only the token, once:
    /// `TOKEN=$(airlock user token alice@example.org)`.
    Token { email: String },
}

/// The first line of stdin, without its line ending.
fn read_password() -> Result<String, CommandError> {
    let mut line = String::new();
    std::io::stdin()
        .read_line(&mut line)
        .map_err(|source| CommandError::Io {
            context: "cannot read the password from stdin".to_owned(),
            source,
        })?;
    Ok(line.trim_end_matches(['\r', '\n']).to_owned())
}

/// A generated password: alone on stdout, so `PASSWORD=$(airlock user add ...)` works.
fn show_password(email: &str, generated: Option<String>) {
    if let Some(password) = generated {
        eprintln!("{email} signs in to the dashboard with this password, shown only this once:");
        println!("{password}");
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    airlock::telemetry::init();
    let workers = match airlock::workers::worker_threads() {
        Ok(workers) => workers,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::FAILURE;
        }
    };
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(workers)
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(run(cli)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {}", airlock::telemetry::error_chain(&e));
            ExitCode::FAILURE
        }
    }
}

/// Runs a serving command as a task on a worker thread rather than on the main thread inside
/// `block_on`: its accept loop then hands each new connection to the worker it runs on, where a
/// loop on the main thread would wake a worker for every connection (and clients that open one
/// per request paid a thread wake-up a call). A panic in it is a panic here, as before.
async fn on_a_worker(
    command: impl Future<Output = Result<(), CommandError>> + Send + 'static,
) -> Result<(), CommandError> {
    match tokio::spawn(command).await {
        Ok(result) => result,
        Err(e) if e.is_panic() => std::panic::resume_unwind(e.into_panic()),
        // Cancelled: only when the runtime itself shuts down, which it does after this returns.
        Err(_) => Ok(()),
    }
}

/// Dispatches to the command's function; each group of subcommands has its own.
async fn run(cli: Cli) -> Result<(), CommandError> {
    let config = cli.config.as_path();
    match cli.command {
        Command::Demo { listen, data_dir } => {
            on_a_worker(commands::demo(commands::DemoArgs { listen, data_dir })).await
        }
        Command::Serve => {
            let config = config.to_owned();
            on_a_worker(async move { commands::serve(&config).await }).await
        }
        Command::Check { offline } => {
            print!("{}", commands::check(config, offline).await?);
            Ok(())
        }
        Command::Token {
            command: TokenCommand::Create { agent },
        } => {
            let token = commands::token_create(config, &agent).await?;
            eprintln!("created a token for agent {agent:?}; it is shown only this once:");
            println!("{token}");
            Ok(())
        }
        Command::User { command } => user(config, command).await,
        Command::Audit { command } => audit(config, command).await,
        Command::Tools { command } => tools(config, command).await,
        Command::Policy { command } => policy(config, command),
        Command::Pending { json } => {
            print!("{}", commands::pending(config, json).await?);
            Ok(())
        }
        Command::Approve {
            id,
            reason,
            as_user,
        } => {
            let done =
                commands::approve(config, &id, reason.as_deref(), as_user.as_deref()).await?;
            eprintln!("{done}");
            Ok(())
        }
        Command::Reject {
            id,
            reason,
            as_user,
        } => {
            let done = commands::reject(config, &id, &reason, as_user.as_deref()).await?;
            eprintln!("{done}");
            Ok(())
        }
        Command::DemoUpstream {
            listen,
            call_log,
            descriptions,
            handshake_only,
        } => {
            let opts = airlock::demo_upstream::DemoOptions {
                call_log,
                descriptions,
                handshake_only,
            };
            commands::demo_upstream(listen, opts).await
        }
    }
}

async fn tools(config: &Path, command: ToolsCommand) -> Result<(), CommandError> {
    match command {
        ToolsCommand::Diff { upstream } => {
            print!(
                "{}",
                commands::tools_diff(config, upstream.as_deref()).await?
            );
        }
        ToolsCommand::Accept {
            upstream,
            tool,
            digest,
        } => {
            let done = commands::tools_accept(config, &upstream, &tool, digest.as_deref()).await?;
            eprintln!("{done}");
        }
    }
    Ok(())
}

fn policy(config: &Path, command: PolicyCommand) -> Result<(), CommandError> {
    let PolicyCommand::Test(question) = command;
    let (report, as_expected) = commands::policy_test(config, &question)?;
    print!("{report}");
    if as_expected {
        Ok(())
    } else {
        Err(CommandError::Invalid(
            "the verdict is not the one --expect names".to_owned(),
        ))
    }
}

async fn user(config: &Path, command: UserCommand) -> Result<(), CommandError> {
    match command {
        UserCommand::Add {
            email,
            role,
            password_stdin,
        } => {
            let chosen = password_stdin.then(read_password).transpose()?;
            let generated = commands::user_add(config, &email, &role, chosen).await?;
            eprintln!(
                "added {email} as {role}; create an API token with: airlock user token {email}"
            );
            show_password(&email, generated);
        }
        UserCommand::Password {
            email,
            password_stdin,
        } => {
            let chosen = password_stdin.then(read_password).transpose()?;
            let generated = commands::user_password(config, &email, chosen).await?;
            eprintln!("set a new dashboard password for {email}; their sessions are ended");
            show_password(&email, generated);
        }
        UserCommand::Token { email } => {
            let token = commands::user_token(config, &email).await?;
            eprintln!("created an API token for {email}; it is shown only this once:");
            println!("{token}");
        }
    }
    Ok(())
}

async fn audit(config: &Path, command: AuditCommand) -> Result<(), CommandError> {
    match command {
        AuditCommand::Verify { file: None, .. } => {
            print!("{}", commands::audit_verify(config).await?);
        }
        AuditCommand::Verify {
            file: Some(file),
            public_key,
            partial,
        } => {
            print!(
                "{}",
                commands::audit_verify_file(config, &file, public_key.as_deref(), partial)?
            );
        }
        AuditCommand::Keygen => {
            let (seed, public_key) = commands::audit_keygen()?;
            println!("{seed}");
            eprintln!("public key: {public_key}");
        }
        AuditCommand::Export {
            format,
            since,
            until,
            upstream,
            tool,
            agent,
        } => {
            let request = commands::ExportRequest {
                format,
                since,
                until,
                upstream,
                tool,
                agent,
            };
            let written = commands::audit_export(config, request).await?;
            eprintln!("exported {written} audit events");
        }
    }
    Ok(())
}
