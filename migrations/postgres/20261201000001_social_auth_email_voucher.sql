-- rocket_social_auth: which provider vouched for users.email_key. Opt-in linking by email links
-- a new identity only when this provider and the new identity's provider are both trusted for
-- it (link_by_verified_email); keys recorded before this column have no voucher and never link.
ALTER TABLE users ADD COLUMN email_vouched_by TEXT;
