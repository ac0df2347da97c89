-- Arbiter annotation server schema, version 2: overlap claims and gold re-qualification.
-- Serving an item now claims one of its pool's overlap places in the same transaction that
-- records the exposure (claimed = 1), with a conditional update that only succeeds while the
-- pool is under its overlap. item_pool_counts.n therefore counts labels plus open claims, and
-- raters fetching at the same moment cannot overshoot overlap_per_pool. A skip, a withdrawal or
-- an unanswered claim older than the project's claim_minutes gives the place back.
ALTER TABLE exposures ADD COLUMN claimed BIGINT NOT NULL DEFAULT 1;
-- Gold standing: answers and correct answers since the rater last qualified, and the
-- qualification round (0 regular work, k in round k, -1 out of rounds) with its answers.
ALTER TABLE raters ADD COLUMN gold_n BIGINT NOT NULL DEFAULT 0;
ALTER TABLE raters ADD COLUMN gold_ok BIGINT NOT NULL DEFAULT 0;
ALTER TABLE raters ADD COLUMN qual_round BIGINT NOT NULL DEFAULT 0;
ALTER TABLE raters ADD COLUMN round_n BIGINT NOT NULL DEFAULT 0;
ALTER TABLE raters ADD COLUMN round_ok BIGINT NOT NULL DEFAULT 0;
-- Databases from version 1 counted labels only: add the open exposures of current raters.
UPDATE item_pool_counts SET n = n + (
    SELECT COUNT(*) FROM exposures e JOIN raters r ON r.id = e.rater_id
    WHERE e.item_id = item_pool_counts.item_id AND r.pool_id = item_pool_counts.pool_id
      AND r.withdrawn_at IS NULL
      AND NOT EXISTS (SELECT 1 FROM annotations a WHERE a.item_id = e.item_id AND a.rater_id = e.rater_id)
);
-- Skipped items gave their place back.
UPDATE exposures SET claimed = 0 WHERE EXISTS (
    SELECT 1 FROM annotations a WHERE a.item_id = exposures.item_id AND a.rater_id = exposures.rater_id AND a.skipped = 1
);
CREATE INDEX exposures_claims ON exposures (claimed, served_at);
CREATE INDEX items_gold ON items (project_id, gold_label);
