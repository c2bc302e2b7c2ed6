-- rocket_social_auth: the audit trail (`[social_auth.audit] store = true`): one row per event,
-- never a token, code, secret or cookie; purged after `retention_days`.
CREATE TABLE auth_events (
    id          INTEGER PRIMARY KEY AUTOINCREMENT,
    at          BIGINT NOT NULL,
    kind        TEXT NOT NULL,
    detail      TEXT,
    user_id     BIGINT,
    provider    TEXT,
    session_id  TEXT,
    ip          TEXT,
    user_agent  TEXT
);
CREATE INDEX auth_events_user ON auth_events (user_id, at);
CREATE INDEX auth_events_at ON auth_events (at);
