-- Prepares migration 0007 (the lean queue: a small hot table, history in partitions) so that its
-- switch holds its locks for as short a time as possible: the audit rows written before the
-- switch become the audit's first partition, which needs a valid upper bound on their time. It is
-- checked here, where a long scan takes only a SHARE UPDATE EXCLUSIVE lock (workers keep
-- appending meanwhile), instead of under the switch's exclusive lock.
--
-- The bound is the start of the day after tomorrow (UTC): everything written until then, even by
-- workers still running the previous version, fits below it, and daily partitions start there.

CREATE TABLE cognito_reset.history_bound (
    singleton boolean PRIMARY KEY DEFAULT true CONSTRAINT history_bound_singleton CHECK (singleton),
    bound     timestamptz NOT NULL
);
INSERT INTO cognito_reset.history_bound (bound)
VALUES (date_trunc('day', now() AT TIME ZONE 'UTC') AT TIME ZONE 'UTC' + interval '2 days');

DO $bound$
DECLARE
    b constant timestamptz := (SELECT bound FROM cognito_reset.history_bound);
BEGIN
    EXECUTE format('ALTER TABLE cognito_reset.attempts ADD CONSTRAINT attempts_before_history_bound CHECK (finished_at < %L) NOT VALID', b);
END
$bound$;
ALTER TABLE cognito_reset.attempts VALIDATE CONSTRAINT attempts_before_history_bound;
