-- rocket_social_auth: sessions at scale (a million users, millions of sessions).
-- The purge deletes expired sessions in small batches, found through sessions_expires.
-- Revoked sessions get partial indexes, so that the rows never revoked (nearly all) cost no
-- index entry: sessions_revoked_live lets an instance load the revoked unexpired sessions at
-- start from the index alone, sessions_revoked_since its periodic reload read only the rows
-- revoked since the last one. They replace sessions_revoked (revoked_at, expires_at), which
-- held every row.
DROP INDEX sessions_revoked;
CREATE INDEX sessions_expires ON sessions (expires_at);
CREATE INDEX sessions_revoked_live ON sessions (expires_at, jti) WHERE revoked_at IS NOT NULL;
CREATE INDEX sessions_revoked_since ON sessions (revoked_at) WHERE revoked_at IS NOT NULL;
