-- rocket_social_auth: a short lease on a social account while one instance refreshes its tokens,
-- so that concurrent refreshes (several instances, several tabs) make one provider call; and a
-- version that changes with every token write, which the lease is taken against.
ALTER TABLE social_users ADD COLUMN token_version BIGINT NOT NULL DEFAULT 0;
ALTER TABLE social_users ADD COLUMN refresh_lease_until BIGINT;
ALTER TABLE social_users ADD COLUMN refresh_lease_owner TEXT;
