-- Arbiter annotation server schema, version 1.
-- Written once for both back ends: `@ID@` becomes the auto-increment primary key type of the
-- back end (SQLite INTEGER PRIMARY KEY AUTOINCREMENT, PostgreSQL BIGSERIAL PRIMARY KEY).
-- Integers are BIGINT everywhere so that both back ends decode them as i64.
CREATE TABLE projects (
    id @ID@,
    name TEXT NOT NULL,
    spec TEXT NOT NULL,
    instructions_version BIGINT NOT NULL,
    created_at BIGINT NOT NULL
);
CREATE TABLE instructions (
    project_id BIGINT NOT NULL REFERENCES projects(id),
    version BIGINT NOT NULL,
    body TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    PRIMARY KEY (project_id, version)
);
CREATE TABLE pools (
    id @ID@,
    project_id BIGINT NOT NULL REFERENCES projects(id),
    name TEXT NOT NULL,
    rule_question TEXT,
    rule_answer TEXT,
    UNIQUE (project_id, name)
);
CREATE TABLE invitations (
    id @ID@,
    project_id BIGINT NOT NULL REFERENCES projects(id),
    pool_id BIGINT REFERENCES pools(id),
    secret_hash TEXT NOT NULL,
    max_uses BIGINT NOT NULL,
    uses BIGINT NOT NULL,
    created_at BIGINT NOT NULL
);
CREATE TABLE raters (
    id @ID@,
    project_id BIGINT NOT NULL REFERENCES projects(id),
    pool_id BIGINT REFERENCES pools(id),
    invitation_id BIGINT NOT NULL REFERENCES invitations(id),
    pseudonym TEXT NOT NULL UNIQUE,
    consented_at BIGINT,
    questionnaire_at BIGINT,
    work_started_at BIGINT NOT NULL,
    withdrawn_at BIGINT,
    created_at BIGINT NOT NULL
);
CREATE TABLE sessions (
    token_hash TEXT PRIMARY KEY,
    role TEXT NOT NULL,
    rater_id BIGINT REFERENCES raters(id),
    csrf TEXT NOT NULL,
    expires_at BIGINT NOT NULL
);
CREATE TABLE answers (
    rater_id BIGINT NOT NULL REFERENCES raters(id),
    question TEXT NOT NULL,
    answer TEXT NOT NULL,
    PRIMARY KEY (rater_id, question)
);
CREATE TABLE items (
    id @ID@,
    project_id BIGINT NOT NULL REFERENCES projects(id),
    external_id TEXT NOT NULL,
    body TEXT NOT NULL,
    warning TEXT,
    gold_label TEXT,
    gold_note TEXT,
    created_at BIGINT NOT NULL,
    UNIQUE (project_id, external_id)
);
CREATE TABLE exposures (
    rater_id BIGINT NOT NULL REFERENCES raters(id),
    item_id BIGINT NOT NULL REFERENCES items(id),
    served_at BIGINT NOT NULL,
    PRIMARY KEY (rater_id, item_id)
);
CREATE TABLE annotations (
    id @ID@,
    project_id BIGINT NOT NULL REFERENCES projects(id),
    item_id BIGINT NOT NULL REFERENCES items(id),
    rater_id BIGINT NOT NULL REFERENCES raters(id),
    label TEXT,
    rationale TEXT,
    skipped BIGINT NOT NULL,
    instructions_version BIGINT NOT NULL,
    served_at BIGINT NOT NULL,
    submitted_at BIGINT NOT NULL,
    duration_ms BIGINT NOT NULL,
    UNIQUE (item_id, rater_id)
);
-- Labels per (item, pool), kept by the writer, so assignment walks an index instead of
-- counting annotations for every item.
CREATE TABLE item_pool_counts (
    item_id BIGINT NOT NULL REFERENCES items(id),
    pool_id BIGINT NOT NULL REFERENCES pools(id),
    n BIGINT NOT NULL,
    PRIMARY KEY (item_id, pool_id)
);
CREATE INDEX item_pool_counts_order ON item_pool_counts (pool_id, n, item_id);
CREATE INDEX annotations_rater ON annotations (rater_id, submitted_at);
CREATE INDEX annotations_project ON annotations (project_id, item_id);
CREATE INDEX items_project ON items (project_id, id);
CREATE INDEX raters_project ON raters (project_id);
