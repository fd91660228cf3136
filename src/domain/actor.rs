//! Who caused a change, and through which face: recorded with every step of a call and every
//! audit event.

use std::borrow::Cow;
use std::fmt;

use super::AgentName;

/// The face a change came through, as history and the audit log spell it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Via {
    /// An agent's MCP request.
    Mcp,
    /// The reviewer JSON API.
    Api,
    /// The `airlock` command line.
    Cli,
    Dashboard,
    /// A review or password link from an email.
    Email,
    /// A policy file on disk.
    File,
    /// Airlock itself (expiry, recovery, a forwarded call's outcome).
    System,
}

impl Via {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Mcp => "mcp",
            Self::Api => "api",
            Self::Cli => "cli",
            Self::Dashboard => "dashboard",
            Self::Email => "email",
            Self::File => "file",
            Self::System => "system",
        }
    }
}

impl fmt::Display for Via {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A person (by email), an agent (`agent:NAME`), the operator at the CLI (`cli`) or the system.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Actor {
    name: Cow<'static, str>,
    via: Via,
}

impl Actor {
    /// Airlock itself.
    pub const SYSTEM: Actor = Actor {
        name: Cow::Borrowed("system"),
        via: Via::System,
    };
    /// The operator at the command line (who has the config and the database).
    pub const OPERATOR: Actor = Actor {
        name: Cow::Borrowed("cli"),
        via: Via::Cli,
    };

    /// The agent `name`, through its MCP requests.
    pub fn agent(name: &AgentName) -> Self {
        Self {
            name: Cow::Owned(format!("agent:{name}")),
            via: Via::Mcp,
        }
    }

    /// A person (a reviewer's email) or a named part of Airlock, through `via`.
    pub fn new(name: impl Into<String>, via: Via) -> Self {
        Self {
            name: Cow::Owned(name.into()),
            via,
        }
    }

    /// Airlock itself, acting on what came through `via` (a policy file it reloaded).
    pub fn system(via: Via) -> Self {
        Self {
            name: Cow::Borrowed("system"),
            via,
        }
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    pub fn via(&self) -> Via {
        self.via
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_agent_is_named_as_history_and_the_audit_log_spell_it() {
        let actor = Actor::agent(&AgentName::new("claude"));
        assert_eq!(
            (actor.name(), actor.via().as_str()),
            ("agent:claude", "mcp")
        );
        assert_eq!(Actor::SYSTEM.name(), "system");
        assert_eq!(Actor::OPERATOR.via(), Via::Cli);
    }
}
