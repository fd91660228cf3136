//! Agents and their bearer tokens. A token is looked up by its SHA-256; the token itself is never
//! stored, so it is shown once, when created.

use sqlx::FromRow;
use uuid::Uuid;

use super::{Store, StoreError, query};
use crate::domain::Timestamp;

#[derive(Debug, Clone, FromRow, PartialEq, Eq)]
pub struct Agent {
    pub id: String,
    pub name: crate::domain::AgentName,
}

impl Store {
    /// Records a new token for `agent_name`, creating the agent on first use.
    pub async fn add_agent_token(
        &self,
        agent_name: &str,
        token_sha256: &str,
    ) -> Result<Agent, StoreError> {
        let mut tx = self.pool.begin().await.map_err(query("begin"))?;
        let now = Timestamp::now().text();
        sqlx::query("INSERT INTO agents (id, name, created_at) VALUES ($1, $2, $3) ON CONFLICT (name) DO NOTHING")
            .bind(Uuid::now_v7().to_string())
            .bind(agent_name)
            .bind(&now)
            .execute(&mut *tx)
            .await
            .map_err(query("insert agent"))?;
        let agent: Agent = sqlx::query_as("SELECT id, name FROM agents WHERE name = $1")
            .bind(agent_name)
            .fetch_one(&mut *tx)
            .await
            .map_err(query("select agent"))?;
        sqlx::query(
            "INSERT INTO agent_tokens (id, agent_id, token_sha256, created_at) VALUES ($1, $2, $3, $4)",
        )
        .bind(Uuid::now_v7().to_string())
        .bind(&agent.id)
        .bind(token_sha256)
        .bind(&now)
        .execute(&mut *tx)
        .await
        .map_err(query("insert agent token"))?;
        tx.commit().await.map_err(query("commit"))?;
        Ok(agent)
    }

    /// The agent holding the (unrevoked) token with this SHA-256, if any.
    pub async fn agent_by_token(&self, token_sha256: &str) -> Result<Option<Agent>, StoreError> {
        sqlx::query_as(
            "SELECT agents.id, agents.name FROM agent_tokens \
             JOIN agents ON agents.id = agent_tokens.agent_id \
             WHERE agent_tokens.token_sha256 = $1 AND agent_tokens.revoked_at IS NULL",
        )
        .bind(token_sha256)
        .fetch_optional(&self.pool)
        .await
        .map_err(query("select agent by token"))
    }
}
