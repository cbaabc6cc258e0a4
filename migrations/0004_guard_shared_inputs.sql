-- Values another system can write must not be able to stop the fleet, nor reveal other
-- enqueuers' users.

-- 1. A job's run_at is a real time: ±infinity broke the wake-up timer's arithmetic on every idle
--    turn. Any such row (none is expected) gets its creation time, and a waiting job that was
--    meant for "never" is cancelled, which is what it asked for. First, and without holding a
--    table lock: this is the one step that reads all of `jobs`, and workers keep running meanwhile.
UPDATE cognito_reset.jobs
SET state = CASE WHEN run_at = 'infinity' AND state IN ('pending', 'retrying') THEN 'cancelled' ELSE state END,
    finished_at = CASE WHEN run_at = 'infinity' AND state IN ('pending', 'retrying') THEN now() ELSE finished_at END,
    run_at = created_at
WHERE NOT isfinite(run_at);

-- The tables whose definitions change, locked in the order a paced claim takes them (bucket,
-- jobs, imports) so a claim in progress cannot deadlock with this migration; what follows is
-- quick, and the new check on `jobs` is NOT VALID (the rows were put right above), so it does not
-- scan the table under the lock.
LOCK TABLE cognito_reset.rate_limits, cognito_reset.jobs, cognito_reset.imports IN ACCESS EXCLUSIVE MODE;
ALTER TABLE cognito_reset.jobs ADD CONSTRAINT jobs_run_at_finite CHECK (isfinite(run_at)) NOT VALID;

-- 2. An import's rate schedule (next_slot_at) is the workers' to keep: enqueuers insert only the
--    import's own columns. ('infinity' there made every worker's claim fail.)
REVOKE INSERT ON cognito_reset.imports FROM cognito_reset_enqueuer;
GRANT INSERT (file_name, sha256, user_pool_id, run_at, priority, max_attempts, requested_by, rate)
    ON cognito_reset.imports TO cognito_reset_enqueuer;
UPDATE cognito_reset.imports SET next_slot_at = NULL WHERE NOT isfinite(next_slot_at);  -- its slots start from now
ALTER TABLE cognito_reset.imports
    ADD CONSTRAINT imports_next_slot_at_finite CHECK (isfinite(next_slot_at));

-- 3. Rates of at least one call per 1,000 s (or exactly 0, a paused ceiling): a rate a hair
--    above 0 put the next slot beyond what an interval can hold, and every claim failed.
UPDATE cognito_reset.rate_limits SET rate = 0.001 WHERE rate > 0 AND rate < 0.001;
UPDATE cognito_reset.rate_limits SET floor_rate = 0.001 WHERE floor_rate < 0.001;
UPDATE cognito_reset.imports SET rate = 0.001 WHERE rate < 0.001;
ALTER TABLE cognito_reset.rate_limits
    DROP CONSTRAINT rate_limits_rate_range,
    ADD CONSTRAINT rate_limits_rate_range CHECK (rate = 0 OR (rate >= 0.001 AND rate <= 10000)),
    DROP CONSTRAINT rate_limits_floor_rate_range,
    ADD CONSTRAINT rate_limits_floor_rate_range CHECK (floor_rate >= 0.001 AND floor_rate <= 10000);
ALTER TABLE cognito_reset.imports
    DROP CONSTRAINT imports_rate_range,
    ADD CONSTRAINT imports_rate_range CHECK (rate >= 0.001 AND rate <= 10000);

-- 4. An idempotency key names a job, not a user: the lookup behind enqueue_reset now answers only
--    whether the key's job is for the same user, so guessing keys reveals no other enqueuer's
--    usernames (row security hides their jobs).
DROP FUNCTION cognito_reset.idempotency_key_job(text);
CREATE FUNCTION cognito_reset.idempotency_key_job(idempotency_key text, user_pool_id text, username text,
    OUT job_id bigint, OUT same_user boolean)
LANGUAGE sql STABLE SECURITY DEFINER SET search_path = pg_catalog, pg_temp
AS $$
    SELECT j.id, j.user_pool_id = $2 AND j.username = $3 FROM cognito_reset.jobs j WHERE j.idempotency_key = $1
$$;
REVOKE EXECUTE ON FUNCTION cognito_reset.idempotency_key_job(text, text, text) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION cognito_reset.idempotency_key_job(text, text, text) TO cognito_reset_enqueuer;

CREATE OR REPLACE FUNCTION cognito_reset.enqueue_reset(
    user_pool_id    text,
    username        text,
    run_at          timestamptz DEFAULT now(),
    priority        integer DEFAULT 100,
    client_metadata jsonb DEFAULT NULL,
    idempotency_key text DEFAULT NULL,
    max_attempts    integer DEFAULT 10,
    requested_by    text DEFAULT current_user
) RETURNS bigint
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
#variable_conflict use_variable
DECLARE
    job_id bigint;
    existing record;
BEGIN
    -- A few rounds at most: a conflicting job may finish between our INSERT and our SELECT.
    FOR round IN 1..5 LOOP
        INSERT INTO cognito_reset.jobs AS j
            (user_pool_id, username, run_at, priority, client_metadata, idempotency_key, max_attempts, requested_by)
        VALUES (user_pool_id, username, coalesce(run_at, now()), coalesce(priority, 100), client_metadata,
                idempotency_key, coalesce(max_attempts, 10), requested_by)
        ON CONFLICT DO NOTHING
        RETURNING j.id INTO job_id;
        IF job_id IS NOT NULL THEN
            RETURN job_id;
        END IF;

        IF idempotency_key IS NOT NULL THEN
            SELECT * INTO existing FROM cognito_reset.idempotency_key_job(idempotency_key, user_pool_id, username);
            IF existing.job_id IS NOT NULL THEN
                IF NOT existing.same_user THEN
                    RAISE EXCEPTION 'idempotency key already used for another user'
                        USING ERRCODE = 'unique_violation', CONSTRAINT = 'jobs_idempotency_key_unique';
                END IF;
                RETURN existing.job_id;
            END IF;
        END IF;

        job_id := cognito_reset.active_job_id(user_pool_id, username);
        IF job_id IS NOT NULL THEN
            RETURN job_id;
        END IF;
    END LOOP;
    RAISE EXCEPTION 'could not enqueue the reset: the conflicting job kept changing'
        USING ERRCODE = 'serialization_failure';
END
$$;
