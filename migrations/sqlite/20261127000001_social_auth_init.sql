-- rocket_social_auth: users and their social accounts (SQLite).
-- Times are unix seconds (BIGINT) so that the same queries run on SQLite and PostgreSQL.
CREATE TABLE users (
    id          INTEGER PRIMARY KEY AUTOINCREMENT,
    name        TEXT,
    email       TEXT,
    avatar_url  TEXT,
    created_at  BIGINT NOT NULL,
    updated_at  BIGINT NOT NULL
);

CREATE TABLE social_users (
    id               INTEGER PRIMARY KEY AUTOINCREMENT,
    user_id          INTEGER NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    provider         TEXT NOT NULL,
    social_id        TEXT NOT NULL,
    token            TEXT,
    refresh_token    TEXT,
    token_expires_at BIGINT,
    created_at       BIGINT NOT NULL,
    updated_at       BIGINT NOT NULL,
    UNIQUE (provider, social_id),
    UNIQUE (user_id, provider)
);
