-- rocket_social_auth: revocable sessions (one row per issued JWT) and the normalised, verified
-- email used for opt-in linking.
ALTER TABLE users ADD COLUMN email_key TEXT;
CREATE INDEX users_email_key ON users (email_key);

CREATE TABLE sessions (
    jti         TEXT PRIMARY KEY,
    sub         TEXT NOT NULL,
    provider    TEXT,
    created_at  BIGINT NOT NULL,
    expires_at  BIGINT NOT NULL,
    revoked_at  BIGINT
);
CREATE INDEX sessions_sub ON sessions (sub);
CREATE INDEX sessions_revoked ON sessions (revoked_at, expires_at);
