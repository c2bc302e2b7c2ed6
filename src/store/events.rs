//! The audit trail: `auth_events` rows written, read back for a user, and purged.

use serde_json::{json, Value};

use crate::audit::AuthEvent;
use crate::clock::now;

use super::{Store, StoreError};

/// A stored event's row: at, kind, detail, provider, session_id, ip, user_agent.
type EventRow = (
    i64,
    String,
    Option<String>,
    Option<String>,
    Option<String>,
    Option<String>,
    Option<String>,
);

impl Store {
    /// Writes one event.
    pub(crate) async fn insert_event(&self, event: &AuthEvent) -> Result<(), StoreError> {
        let _turn = self.write_turn().await?;
        sqlx::query(
            "INSERT INTO auth_events (at, kind, detail, user_id, provider, session_id, ip, user_agent) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
        )
        .bind(event.at)
        .bind(event.kind.name())
        .bind(event.kind.detail())
        .bind(event.user_id)
        .bind(&event.provider)
        .bind(&event.session_id)
        .bind(event.ip.map(|ip| ip.to_string()))
        .bind(&event.user_agent)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// `user_id`'s last `limit` events, newest first, as `GET {base}/events` shows them.
    pub(crate) async fn events_of(
        &self,
        user_id: i64,
        limit: i64,
    ) -> Result<Vec<Value>, StoreError> {
        let rows: Vec<EventRow> = sqlx::query_as(
            "SELECT at, kind, detail, provider, session_id, ip, user_agent FROM auth_events \
             WHERE user_id = $1 ORDER BY at DESC, id DESC LIMIT $2",
        )
        .bind(user_id)
        .bind(limit)
        .fetch_all(&self.pool)
        .await?;
        Ok(rows
            .into_iter()
            .map(|(at, kind, detail, provider, session_id, ip, user_agent)| {
                json!({
                    "at": at, "kind": kind, "detail": detail, "provider": provider,
                    "session_id": session_id, "ip": ip, "user_agent": user_agent,
                })
            })
            .collect())
    }

    /// Deletes events older than `retention_days`.
    pub(crate) async fn purge_events(&self, retention_days: u32) -> Result<u64, StoreError> {
        let _turn = self.write_turn().await?;
        Ok(sqlx::query("DELETE FROM auth_events WHERE at < $1")
            .bind(now() - i64::from(retention_days) * 86_400)
            .execute(&self.pool)
            .await?
            .rows_affected())
    }
}
