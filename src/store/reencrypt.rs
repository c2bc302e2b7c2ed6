//! Re-encryption of stored provider tokens under the current key (key rotation).

use crate::secret::Secret;
use crate::vault::{Column, RowId, TokenVault};

use super::{Store, StoreError};

/// Progress of a re-encryption pass.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct ReencryptReport {
    /// Rows looked at.
    pub rows: u64,
    /// Values rewritten under the current key.
    pub rewritten: u64,
    /// Values already under the current key.
    pub current: u64,
    /// Values that decrypt under no configured key (left as they are; they count as absent).
    pub undecryptable: u64,
    /// Values changed by the app while we worked (left to the app, which writes under the
    /// current key).
    pub skipped: u64,
}

impl Store {
    /// Rewrites one batch of stored tokens (rows with `id > after`) under the current key;
    /// plain-text values (from before encryption, or imported) are sealed too. Each value is
    /// replaced only if it is still what was read (compare-and-set), so a pass is safe while
    /// the app serves and can be resumed at any time. Returns the last id seen.
    pub(crate) async fn reencrypt_batch(
        &self,
        after: i64,
        limit: i64,
        report: &mut ReencryptReport,
    ) -> Result<Option<i64>, StoreError> {
        type Row = (i64, String, String, Option<String>, Option<String>);
        let rows: Vec<Row> = sqlx::query_as(
            "SELECT id, provider, social_id, token, refresh_token FROM social_users \
             WHERE id > $1 ORDER BY id LIMIT $2",
        )
        .bind(after)
        .bind(limit)
        .fetch_all(&self.pool)
        .await?;
        let current = self.vault.current_kid().to_owned();
        for (id, provider, social_id, token, refresh) in &rows {
            report.rows += 1;
            let row = RowId {
                provider,
                social_id,
            };
            for (column, value, sql) in [
                (Column::Token, token, "UPDATE social_users SET token = $1 WHERE id = $2 AND token = $3"),
                (
                    Column::RefreshToken,
                    refresh,
                    "UPDATE social_users SET refresh_token = $1 WHERE id = $2 AND refresh_token = $3",
                ),
            ] {
                let Some(value) = value else { continue };
                let plain = match TokenVault::kid_of(value) {
                    Some(kid) if kid == current => {
                        report.current += 1;
                        continue;
                    }
                    Some(_) => match self.vault.open(value, column, row) {
                        Some(plain) => plain,
                        None => {
                            report.undecryptable += 1;
                            continue;
                        }
                    },
                    None => Secret::new(value.clone()),
                };
                let sealed = self.vault.seal(plain.expose(), column, row);
                let changed = sqlx::query(sql)
                    .bind(&sealed)
                    .bind(id)
                    .bind(value)
                    .execute(&self.pool)
                    .await?
                    .rows_affected();
                if changed == 1 {
                    report.rewritten += 1;
                } else {
                    report.skipped += 1;
                }
            }
        }
        Ok(rows.last().map(|r| r.0))
    }
}
