-- Arbiter annotation server schema, version 3: releases, erasure and abuse resistance.
-- Identity statistics are published from stored snapshots that change only in steps of at
-- least k raters (see src/release.rs), and `rater_changes` counts joins and withdrawals.
CREATE TABLE releases (
    project_id BIGINT NOT NULL REFERENCES projects(id),
    seq BIGINT NOT NULL,
    taken_at BIGINT NOT NULL,
    body TEXT NOT NULL,
    PRIMARY KEY (project_id, seq)
);
ALTER TABLE projects ADD COLUMN rater_changes BIGINT NOT NULL DEFAULT 0;
-- Withdrawn raters are erased, rater row included, only this count remains.
ALTER TABLE projects ADD COLUMN withdrawn BIGINT NOT NULL DEFAULT 0;
-- Pay earned by raters who withdrew: anonymous, so the admin still sees and pays what is owed.
-- `reference` is shown to the rater once, to quote when claiming the payment.
CREATE TABLE owed (
    id @ID@,
    project_id BIGINT NOT NULL REFERENCES projects(id),
    reference TEXT NOT NULL,
    labelled BIGINT NOT NULL,
    skipped BIGINT NOT NULL,
    duration_ms BIGINT NOT NULL,
    created_at BIGINT NOT NULL
);
-- SHA-256 of the withdrawal code's secret (a 128-bit random value shown once at consent).
ALTER TABLE raters ADD COLUMN withdraw_hash TEXT;
-- Invitations expire and can be revoked, `prefix` (the secret's first 4 hex digits, not secret
-- enough to matter) lets a wrong code be refused before any memory-hard hash is computed.
ALTER TABLE invitations ADD COLUMN expires_at BIGINT;
ALTER TABLE invitations ADD COLUMN revoked_at BIGINT;
ALTER TABLE invitations ADD COLUMN prefix TEXT;
-- Admin sessions name the admin key they were opened with: rotating ARBITER_ADMIN_TOKEN ends them.
ALTER TABLE sessions ADD COLUMN admin_key TEXT;
CREATE TABLE settings (
    name TEXT PRIMARY KEY,
    value TEXT NOT NULL
);
CREATE INDEX sessions_expiry ON sessions (expires_at);
