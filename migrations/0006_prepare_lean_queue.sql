-- Prepares the lean queue (0008: `jobs` partitioned by state, a small hot partition, history by
-- day) so that 0008's switch holds its exclusive locks as briefly as possible. Nothing here
-- blocks the workers or other systems for longer than a moment.
--
-- 1. The hot partition is built ahead of the switch, beside the live table: `jobs_active` starts
--    as a table of its own, kept equal to the live table's active rows by a trigger on it, and
--    filled by 0007 in small batches. At the switch it is only attached.
-- 2. The audit rows written so far become the partitioned audit's first partition, which needs a
--    valid upper bound on their time: it is added here and checked by 0007, where the scan takes
--    only a SHARE UPDATE EXCLUSIVE lock (workers keep appending meanwhile).

-- The bound: the start of the day after tomorrow (UTC). Everything written until the switch, even
-- by workers still running the previous version, fits below it, and daily partitions start there.
-- (Until 0008 has run, the check also refuses audit rows from after the bound: 0008 follows in the
-- same `migrate`, and two days leave room for one that failed and is run again.) On a new, empty
-- database history starts today: daily partitions from the first day.
-- The locks this needs (a moment's SHARE ROW EXCLUSIVE on jobs for the trigger, ACCESS EXCLUSIVE
-- on attempts for its check), taken together up front in short tries: waiting behind a worker's
-- statement while holding one of them could deadlock with it.
-- Takes the locks `lock_sql` names in short tries (100 ms each, for at most 10 minutes), so that
-- no worker's statement queues behind a migration that queues behind a long transaction, and a
-- migration never waits for one lock while holding another a worker needs (a deadlock). For
-- 0006 and 0008; 0008 drops it.
CREATE FUNCTION cognito_reset.lock_in_short_tries(lock_sql text) RETURNS void
LANGUAGE plpgsql AS $lock$
DECLARE
    started constant timestamptz := clock_timestamp();
    lock_timeout_before constant text := current_setting('lock_timeout');
BEGIN
    LOOP
        BEGIN
            PERFORM set_config('lock_timeout', '100ms', true);
            EXECUTE lock_sql;
            PERFORM set_config('lock_timeout', lock_timeout_before, true);
            RETURN;
        EXCEPTION WHEN lock_not_available THEN
            -- The attempt's locks, and its lock_timeout, went with its subtransaction.
            IF clock_timestamp() - started > interval '10 minutes' THEN
                RAISE EXCEPTION 'could not lock the cognito_reset tables in 10 minutes: a long transaction holds one of them'
                    USING ERRCODE = 'lock_not_available', HINT = 'Migrate again once it has ended.';
            END IF;
            PERFORM pg_sleep(0.05 + random() * 0.1);
        END;
    END LOOP;
END
$lock$;
REVOKE EXECUTE ON FUNCTION cognito_reset.lock_in_short_tries(text) FROM PUBLIC;
SELECT cognito_reset.lock_in_short_tries(
    'LOCK TABLE cognito_reset.jobs IN SHARE ROW EXCLUSIVE MODE; LOCK TABLE cognito_reset.attempts IN ACCESS EXCLUSIVE MODE');

-- Days are UTC days whatever the session's time zone (adding a day follows its daylight saving).
SET LOCAL TimeZone = 'UTC';

CREATE TABLE cognito_reset.history_bound (
    singleton boolean PRIMARY KEY DEFAULT true CONSTRAINT history_bound_singleton CHECK (singleton),
    bound     timestamptz NOT NULL
);
INSERT INTO cognito_reset.history_bound (bound)
SELECT date_trunc('day', now() AT TIME ZONE 'UTC') AT TIME ZONE 'UTC'
       + CASE WHEN EXISTS (SELECT FROM cognito_reset.jobs) OR EXISTS (SELECT FROM cognito_reset.attempts)
              THEN interval '2 days' ELSE interval '0 days' END;

DO $bound$
DECLARE
    b constant timestamptz := (SELECT bound FROM cognito_reset.history_bound);
BEGIN
    EXECUTE format('ALTER TABLE cognito_reset.attempts ADD CONSTRAINT attempts_before_history_bound CHECK (finished_at < %L) NOT VALID', b);
END
$bound$;
-- Validated by copy_active_jobs (0007), in a transaction of its own that blocks no writer.

-- The hot partition-to-be: the live table's columns and checks, active states only. Its indexes
-- are built now, on an empty table, under temporary names (the live table's indexes still hold
-- the final ones); 0008 renames them. Each is there for a statement of the product:
--
-- No index of the hot partition covers a column a claim or a lease renewal changes (state,
-- attempt, locked_by, started_at, lease_expires_at), not even in a partial index's condition:
-- claims and renewals are then HOT updates, which write the row's new version on the same page
-- and no index entry at all (before, every claim added three). The fill factor leaves a page
-- room for those new versions. The price: the claim indexes also hold the few running jobs (at
-- most the fleet's concurrency), which a claim steps over, and the rescue of expired leases reads
-- the hot partition whole, once per heartbeat (docs/design.md, "Storage").
CREATE TABLE cognito_reset.jobs_active (LIKE cognito_reset.jobs INCLUDING DEFAULTS INCLUDING CONSTRAINTS)
    WITH (fillfactor = 70, autovacuum_vacuum_scale_factor = 0.02, autovacuum_vacuum_insert_scale_factor = 0.05,
          autovacuum_analyze_scale_factor = 0.02);
ALTER TABLE cognito_reset.jobs_active
    -- Makes attaching it at the switch a catalogue change (no scan).
    ADD CONSTRAINT jobs_active_states CHECK (state IN ('pending', 'running', 'retrying')),
    -- The worker's outcome, heartbeat, release and "still held" statements, `jobs show`.
    ADD CONSTRAINT jobs_active_pkey PRIMARY KEY (id);
-- At most one active job per user (a second request returns the first: no second email):
-- enqueue_reset's and the import's ON CONFLICT DO NOTHING, active_job_id, plain inserts.
CREATE UNIQUE INDEX jobs_active_user_next ON cognito_reset.jobs_active (user_pool_id, username);
-- claim_paced: direct jobs in claim order, and each import's jobs (also its skip scan over the
-- imports with runnable jobs); the runnable counts.
CREATE INDEX jobs_active_claimable_direct_next ON cognito_reset.jobs_active (priority, run_at, id)
    WHERE import_id IS NULL;
CREATE INDEX jobs_active_claimable_by_import_next ON cognito_reset.jobs_active (import_id, priority, run_at, id)
    WHERE import_id IS NOT NULL;
-- The wake-up timer of an idle worker: the earliest run_at still to come (nextRunAt). Written on
-- insert and retry only: a claim does not change run_at.
CREATE INDEX jobs_active_run_at_next ON cognito_reset.jobs_active (run_at);
REVOKE ALL ON cognito_reset.jobs_active FROM PUBLIC;

-- Keeps jobs_active equal to the live table's active rows until the switch: every insert,
-- update and delete of a job is applied to it in the same transaction. The live table allows
-- one active job per user, and its writers commit in that order, so the copy never holds two.
CREATE FUNCTION cognito_reset.mirror_active_job() RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    IF TG_OP <> 'INSERT' AND OLD.state IN ('pending', 'running', 'retrying')
       AND (TG_OP = 'DELETE' OR NEW.state NOT IN ('pending', 'running', 'retrying')) THEN
        DELETE FROM cognito_reset.jobs_active WHERE id = OLD.id;
    END IF;
    IF TG_OP <> 'DELETE' AND NEW.state IN ('pending', 'running', 'retrying') THEN
        INSERT INTO cognito_reset.jobs_active SELECT NEW.*
        ON CONFLICT (id) DO UPDATE SET
            (user_pool_id, username, client_metadata, state, priority, attempt, max_attempts, run_at, created_at,
             started_at, finished_at, locked_by, lease_expires_at, last_error_code, last_error_message,
             cognito_request_id, import_id, idempotency_key, requested_by, enqueued_by)
          = (excluded.user_pool_id, excluded.username, excluded.client_metadata, excluded.state, excluded.priority,
             excluded.attempt, excluded.max_attempts, excluded.run_at, excluded.created_at, excluded.started_at,
             excluded.finished_at, excluded.locked_by, excluded.lease_expires_at, excluded.last_error_code,
             excluded.last_error_message, excluded.cognito_request_id, excluded.import_id, excluded.idempotency_key,
             excluded.requested_by, excluded.enqueued_by);
    END IF;
    RETURN NULL;
END
$$;
REVOKE EXECUTE ON FUNCTION cognito_reset.mirror_active_job() FROM PUBLIC;
CREATE TRIGGER jobs_mirror_active AFTER INSERT OR UPDATE OR DELETE ON cognito_reset.jobs
    FOR EACH ROW EXECUTE FUNCTION cognito_reset.mirror_active_job();

-- Copies the active rows that exist already, in batches of p_batch, each its own transaction
-- (0007 calls it outside a transaction block), then validates the audit's bound. FOR SHARE: a row
-- being copied cannot change until its batch commits, and one that changed before is read as it
-- is now, so the trigger and the copy never disagree. SKIP LOCKED: waiting for a row a worker is
-- writing could deadlock with it; such a row is mirrored by the trigger when that write
-- commits, and any still missing is copied by the rounds that follow (0008 counts them again).
CREATE PROCEDURE cognito_reset.copy_active_jobs(p_batch integer DEFAULT 5000)
LANGUAGE plpgsql
AS $$
DECLARE
    last_id bigint := 0;
    seen bigint;
    missing bigint;
BEGIN
    LOOP
        WITH batch AS (
            SELECT * FROM cognito_reset.jobs
            WHERE state IN ('pending', 'running', 'retrying') AND id > last_id
            ORDER BY id LIMIT p_batch
            FOR SHARE SKIP LOCKED
        ), copy AS (
            INSERT INTO cognito_reset.jobs_active SELECT * FROM batch ON CONFLICT (id) DO NOTHING
        )
        SELECT count(*), max(id) INTO seen, last_id FROM batch;
        COMMIT;
        EXIT WHEN seen < p_batch;
    END LOOP;
    FOR round IN 1..50 LOOP
        WITH batch AS (
            SELECT * FROM cognito_reset.jobs j
            WHERE j.state IN ('pending', 'running', 'retrying')
              AND NOT EXISTS (SELECT FROM cognito_reset.jobs_active a WHERE a.id = j.id)
            FOR SHARE SKIP LOCKED
        ), copy AS (
            INSERT INTO cognito_reset.jobs_active SELECT * FROM batch ON CONFLICT (id) DO NOTHING
        )
        SELECT count(*) INTO missing FROM batch;
        COMMIT;
        EXIT WHEN missing = 0;
        PERFORM pg_sleep(0.05);
    END LOOP;
    ALTER TABLE cognito_reset.attempts VALIDATE CONSTRAINT attempts_before_history_bound;
    COMMIT;
END
$$;
REVOKE EXECUTE ON PROCEDURE cognito_reset.copy_active_jobs(integer) FROM PUBLIC;
