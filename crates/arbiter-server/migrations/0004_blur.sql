-- Arbiter annotation server schema, version 4: blur is its own per-item choice.
-- NULL follows the warning (a warned item is blurred, as before), 1 blurs, 0 only warns.
ALTER TABLE items ADD COLUMN blur BIGINT
