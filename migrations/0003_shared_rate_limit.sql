-- One rate for the whole fleet: every worker on every host reserves its Cognito calls from the
-- same row of rate_limits, in small batches of evenly spaced time slots, and the rate adapts to
-- throttling the way the AWS SDKs' adaptive mode does (CUBIC: multiplicative decrease, then a
-- cubic climb back to the rate that was throttled and on toward the ceiling).
--
-- How slots work (a generic cell-rate algorithm): `next_slot_at` is the start of the next free
-- slot; slots are 1/rate apart. A worker's claim reserves up to N slots that start no further
-- ahead than a short horizon (half a second), claims that many jobs in priority order, and calls
-- each at its slot. A crashed worker's unused slots simply pass: the fleet loses at most one
-- horizon's worth of calls, and nothing needs cleaning up.

ALTER TABLE cognito_reset.rate_limits
    -- The adaptive rate may now sit above a ceiling an operator just lowered (plain SQL UPDATE
    -- of `rate` is supported); functions always use the lower of the two.
    DROP CONSTRAINT rate_limits_current_rate_range,
    ADD CONSTRAINT rate_limits_current_rate_range CHECK (current_rate >= 0 AND current_rate <= 10000),
    -- Throttling never pushes the rate below this (unless the ceiling itself is lower).
    -- Calls at once after an idle spell: 1 by default, so calls are evenly spaced from the start
    -- (Cognito counts requests per second; a burst on top of the steady rate gets throttled).
    ALTER COLUMN burst SET DEFAULT 1,
    ADD COLUMN floor_rate double precision NOT NULL DEFAULT 1
        CONSTRAINT rate_limits_floor_rate_range CHECK (floor_rate > 0 AND floor_rate <= 10000),
    ADD COLUMN next_slot_at timestamptz,
    -- CUBIC state: when the rate was last cut, and the rate it was cut from.
    ADD COLUMN decreased_at timestamptz,
    ADD COLUMN rate_before_decrease double precision,
    ADD COLUMN last_throttle_at timestamptz,
    ADD COLUMN tokens_granted bigint NOT NULL DEFAULT 0,
    ADD COLUMN throttles bigint NOT NULL DEFAULT 0,
    -- Two one-minute windows (current and previous) give "in the last minute" figures cheaply.
    ADD COLUMN window_started_at timestamptz NOT NULL DEFAULT now(),
    ADD COLUMN window_tokens bigint NOT NULL DEFAULT 0,
    ADD COLUMN previous_window_tokens bigint NOT NULL DEFAULT 0,
    ADD COLUMN window_throttles bigint NOT NULL DEFAULT 0,
    ADD COLUMN previous_window_throttles bigint NOT NULL DEFAULT 0;

COMMENT ON COLUMN cognito_reset.rate_limits.rate IS
    'Ceiling in requests per second for every worker using this key; 0 pauses them all. Set it with `cognito-reset rate set` or UPDATE.';
COMMENT ON COLUMN cognito_reset.rate_limits.current_rate IS
    'The adaptive rate in use at updated_at (throttling lowers it; it climbs back toward rate).';

-- An operator who sets the ceiling (here or with plain SQL) means that rate from now on: the
-- adaptive state starts again from it, and throttling will lower it again if Cognito objects.
CREATE FUNCTION cognito_reset.rate_limits_ceiling_changed() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'INSERT' OR NEW.rate IS DISTINCT FROM OLD.rate THEN
        -- Clamped, so that an out-of-range ceiling is reported by the ceiling's own constraint.
        NEW.current_rate := greatest(0, least(NEW.rate, 10000));
        NEW.decreased_at := NULL;
        NEW.rate_before_decrease := NULL;
    END IF;
    RETURN NEW;
END
$$;
CREATE TRIGGER rate_limits_ceiling_changed BEFORE INSERT OR UPDATE OF rate ON cognito_reset.rate_limits
    FOR EACH ROW EXECUTE FUNCTION cognito_reset.rate_limits_ceiling_changed();

-- The adaptive rate of bucket `b` at time `at`: the ceiling when never throttled; otherwise
-- CUBIC's curve through 0.7 × the throttled rate at the cut, back to it after K seconds, then
-- faster, clamped to [floor, ceiling]. C = 0.4 and beta = 0.7 as in the AWS SDKs.
CREATE FUNCTION cognito_reset.adaptive_rate(b cognito_reset.rate_limits, at timestamptz)
RETURNS double precision
LANGUAGE sql IMMUTABLE AS $$
    SELECT CASE
        WHEN b.rate <= 0 THEN 0
        WHEN b.decreased_at IS NULL OR b.rate_before_decrease IS NULL THEN b.rate
        ELSE least(b.rate, greatest(least(b.floor_rate, b.rate),
            b.rate_before_decrease + 0.4 * power(
                greatest(extract(epoch FROM at - b.decreased_at)::double precision, 0)
                - cbrt(b.rate_before_decrease * 0.3 / 0.4), 3)))
    END
$$;

-- Bucket `b` with its one-minute windows moved on to time `at`.
CREATE FUNCTION cognito_reset.rate_window_rolled(b cognito_reset.rate_limits, at timestamptz)
RETURNS cognito_reset.rate_limits
LANGUAGE plpgsql IMMUTABLE AS $$
BEGIN
    IF at - b.window_started_at >= interval '2 minutes' THEN
        b.window_started_at := at;
        b.previous_window_tokens := 0;
        b.previous_window_throttles := 0;
        b.window_tokens := 0;
        b.window_throttles := 0;
    ELSIF at - b.window_started_at >= interval '1 minute' THEN
        b.window_started_at := b.window_started_at + interval '1 minute';
        b.previous_window_tokens := b.window_tokens;
        b.previous_window_throttles := b.window_throttles;
        b.window_tokens := 0;
        b.window_throttles := 0;
    END IF;
    RETURN b;
END
$$;

-- A per-import ceiling (`cognito-reset import --rate`), so that a bulk import never takes the
-- whole quota: its jobs also need a slot of the import's own (non-adaptive) schedule.
ALTER TABLE cognito_reset.imports
    ADD COLUMN rate double precision CONSTRAINT imports_rate_range CHECK (rate > 0 AND rate <= 10000),
    ADD COLUMN next_slot_at timestamptz;

-- Claim paths that stay index-bounded when an import is held back by its own rate: jobs not
-- from an import, and each import's jobs (also used to list imports with runnable jobs).
CREATE INDEX jobs_claimable_direct ON cognito_reset.jobs (priority, run_at, id)
    WHERE state IN ('pending', 'retrying') AND import_id IS NULL;
CREATE INDEX jobs_claimable_by_import ON cognito_reset.jobs (import_id, priority, run_at, id)
    WHERE state IN ('pending', 'retrying') AND import_id IS NOT NULL;

-- Claims up to p_want runnable jobs for worker p_worker, each with a call slot from bucket
-- p_key (created with ceiling p_default_rate if missing), in claim order (priority, run_at, id).
-- Returns the claimed jobs with `call_in` (seconds from now to their slot), then one row with a
-- NULL id: `wait` is how long until the next batch of slots is free (when jobs were claimed, or
-- the bucket or an import's own rate is exhausted, or the ceiling is 0), or NULL when nothing
-- was runnable; `current_rate` and `ceiling` as now.
--
-- Slots are only handed out in batches (at least a quarter second's worth, or p_want if fewer)
-- so the database sees a few statements per second, not one per call.
CREATE FUNCTION cognito_reset.claim_paced(
    p_worker text, p_want integer, p_lease double precision, p_key text, p_default_rate double precision,
    p_horizon double precision DEFAULT 0.5)
RETURNS TABLE (id bigint, user_pool_id text, username text, client_metadata jsonb, attempt integer,
               max_attempts integer, priority smallint, run_at timestamptz, claim_token bigint,
               call_in double precision, wait double precision, current_rate double precision,
               ceiling double precision)
LANGUAGE plpgsql AS $$
DECLARE
    b cognito_reset.rate_limits;
    t timestamptz;
    r double precision;
    slot_base timestamptz;
    available integer;
    batch integer;
    import_ids bigint[] := '{}';
    allowances integer[] := '{}';
    import_bases timestamptz[] := '{}';
    import_rates double precision[] := '{}';
    imp record;
    imp_base timestamptz;
    import_wait double precision;
    claimed integer := 0;
    n integer := 0;
    wait_s double precision;
BEGIN
    IF p_want < 1 OR p_horizon <= 0 THEN
        RAISE EXCEPTION 'claim_paced: p_want must be at least 1 and p_horizon above 0' USING ERRCODE = '22023';
    END IF;
    SELECT * INTO b FROM cognito_reset.rate_limits AS rl WHERE rl.key = p_key FOR UPDATE;
    IF NOT FOUND THEN
        INSERT INTO cognito_reset.rate_limits AS rl (key, rate, burst, current_rate)
        VALUES (p_key, p_default_rate, 1, p_default_rate)
        ON CONFLICT (key) DO NOTHING;
        SELECT * INTO b FROM cognito_reset.rate_limits AS rl WHERE rl.key = p_key FOR UPDATE;
    END IF;
    -- After the row lock: another fleet member may have held it for a moment.
    t := clock_timestamp();
    b := cognito_reset.rate_window_rolled(b, t);
    r := cognito_reset.adaptive_rate(b, t);
    IF r <= 0 THEN
        -- Paused (ceiling 0): look again in a second.
        wait_s := 1.0;
    ELSE
        -- An idle bucket allows a burst, but never more than one second's worth at the current rate.
        slot_base := greatest(coalesce(b.next_slot_at, t),
                              t - make_interval(secs => (least(b.burst, greatest(1, r)) - 1) / r));
        available := CASE WHEN slot_base > t + make_interval(secs => p_horizon) THEN 0
                          ELSE floor(extract(epoch FROM t + make_interval(secs => p_horizon) - slot_base) * r)::integer + 1 END;
        batch := least(p_want, greatest(1, floor(r * p_horizon / 2)::integer));
        IF available < batch THEN
            wait_s := greatest(0.001, extract(epoch FROM slot_base + make_interval(secs => (batch - 1) / r - p_horizon) - t));
        ELSE
            n := least(p_want, available);
        END IF;
    END IF;

    IF n > 0 THEN
        -- Imports with runnable jobs (a skip scan: one index probe per import), each allowed up to n
        -- jobs, or as many slots as its own rate has free.
        FOR imp IN
            WITH RECURSIVE active(import_id) AS (
                (SELECT j.import_id FROM cognito_reset.jobs j
                 WHERE j.state IN ('pending', 'retrying') AND j.import_id IS NOT NULL
                 ORDER BY j.import_id LIMIT 1)
                UNION ALL
                SELECT (SELECT j.import_id FROM cognito_reset.jobs j
                        WHERE j.state IN ('pending', 'retrying') AND j.import_id IS NOT NULL AND j.import_id > a.import_id
                        ORDER BY j.import_id LIMIT 1)
                FROM active a WHERE a.import_id IS NOT NULL
            )
            SELECT i.id, i.rate, i.next_slot_at FROM active JOIN cognito_reset.imports i ON i.id = active.import_id
        LOOP
            IF imp.rate IS NULL THEN
                import_ids := import_ids || imp.id;
                allowances := allowances || n;
                import_bases := import_bases || t;
                import_rates := import_rates || 'Infinity'::double precision;
            ELSE
                imp_base := greatest(coalesce(imp.next_slot_at, t), t);
                IF imp_base <= t + make_interval(secs => p_horizon) THEN
                    import_ids := import_ids || imp.id;
                    allowances := allowances || least(n, floor(extract(epoch FROM t + make_interval(secs => p_horizon) - imp_base) * imp.rate)::integer + 1);
                    import_bases := import_bases || imp_base;
                    import_rates := import_rates || imp.rate;
                ELSE
                    -- Held back by its own rate: come back when its next slot is within reach.
                    import_wait := least(import_wait,
                        extract(epoch FROM imp_base - make_interval(secs => p_horizon) - t)::double precision);
                END IF;
            END IF;
        END LOOP;

        RETURN QUERY
        WITH direct AS (
            SELECT j.id, j.priority, j.run_at, NULL::bigint AS import_id
            FROM cognito_reset.jobs j
            WHERE j.state IN ('pending', 'retrying') AND j.import_id IS NULL AND j.run_at <= now()
              AND j.attempt < j.max_attempts
            ORDER BY j.priority, j.run_at, j.id
            LIMIT n
            FOR UPDATE SKIP LOCKED
        ), imported AS (
            SELECT c.id, c.priority, c.run_at, a.import_id
            FROM unnest(import_ids, allowances) AS a(import_id, allowance)
            CROSS JOIN LATERAL (
                SELECT j.id, j.priority, j.run_at
                FROM cognito_reset.jobs j
                WHERE j.state IN ('pending', 'retrying') AND j.import_id = a.import_id AND j.run_at <= now()
                  AND j.attempt < j.max_attempts
                ORDER BY j.priority, j.run_at, j.id
                LIMIT a.allowance
                FOR UPDATE SKIP LOCKED
            ) c
        ), chosen AS (
            SELECT x.id, x.import_id,
                   row_number() OVER (ORDER BY x.priority, x.run_at, x.id) - 1 AS slot,
                   row_number() OVER (PARTITION BY x.import_id ORDER BY x.priority, x.run_at, x.id) - 1 AS import_slot
            FROM (SELECT * FROM direct UNION ALL SELECT * FROM imported ORDER BY 2, 3, 1 LIMIT n) x
        ), claimed_jobs AS (
            UPDATE cognito_reset.jobs AS j
            SET state = 'running', locked_by = p_worker, attempt = j.attempt + 1, started_at = now(),
                lease_expires_at = now() + make_interval(secs => p_lease)
            FROM chosen WHERE j.id = chosen.id
            RETURNING j.id, j.user_pool_id, j.username, j.client_metadata, j.attempt, j.max_attempts, j.priority,
                      j.run_at, (extract(epoch FROM j.started_at) * 1000000)::bigint AS claim_token,
                      chosen.slot, chosen.import_id, chosen.import_slot
        ), import_use AS (
            UPDATE cognito_reset.imports AS i
            SET next_slot_at = u.base + make_interval(secs => u.used / u.rate)
            FROM (SELECT cj.import_id, count(*) AS used, min(l.base) AS base, min(l.rate) AS rate
                  FROM claimed_jobs cj JOIN unnest(import_ids, import_bases, import_rates) AS l(import_id, base, rate)
                    ON l.import_id = cj.import_id
                  WHERE l.rate <> 'Infinity' GROUP BY cj.import_id) u
            WHERE i.id = u.import_id
        )
        SELECT cj.id, cj.user_pool_id, cj.username, cj.client_metadata, cj.attempt, cj.max_attempts, cj.priority,
               cj.run_at, cj.claim_token,
               greatest(0, extract(epoch FROM greatest(
                   slot_base + make_interval(secs => cj.slot / r),
                   coalesce(l.base + make_interval(secs => CASE WHEN l.rate = 'Infinity' THEN 0 ELSE cj.import_slot / l.rate END), t))
                   - t))::double precision,
               NULL::double precision, r, b.rate
        FROM claimed_jobs cj
        LEFT JOIN unnest(import_ids, import_bases, import_rates) AS l(import_id, base, rate) ON l.import_id = cj.import_id;
        GET DIAGNOSTICS claimed = ROW_COUNT;
        wait_s := CASE WHEN claimed > 0
             -- Jobs came: when the next batch of slots will be free, so the worker need not ask before.
             THEN greatest(0, extract(epoch FROM slot_base + make_interval(secs => (claimed + batch - 1) / r - p_horizon) - t))
             WHEN import_wait IS NOT NULL THEN greatest(0.001, import_wait) END;
    END IF;

    UPDATE cognito_reset.rate_limits AS rl
    SET next_slot_at = CASE WHEN claimed > 0 THEN slot_base + make_interval(secs => claimed / r) ELSE b.next_slot_at END,
        current_rate = r,
        tokens = CASE WHEN r <= 0 THEN 0
                      ELSE least(b.burst, greatest(0, extract(epoch FROM t - (slot_base + make_interval(secs => claimed / r))) * r)) END,
        tokens_granted = b.tokens_granted + claimed,
        window_started_at = b.window_started_at,
        window_tokens = b.window_tokens + claimed,
        previous_window_tokens = b.previous_window_tokens,
        window_throttles = b.window_throttles,
        previous_window_throttles = b.previous_window_throttles,
        updated_at = t
    WHERE rl.key = p_key;
    RETURN QUERY SELECT NULL::bigint, NULL::text, NULL::text, NULL::jsonb, NULL::integer, NULL::integer,
        NULL::smallint, NULL::timestamptz, NULL::bigint, NULL::double precision, wait_s, r, b.rate;
END
$$;

-- Cognito answered TooManyRequests `p_count` times: cut the shared rate for everyone, at most
-- once a second however many workers report the same storm. Returns the new adaptive rate.
CREATE FUNCTION cognito_reset.report_throttles(p_key text, p_count integer)
RETURNS double precision
LANGUAGE plpgsql AS $$
DECLARE
    b cognito_reset.rate_limits;
    t timestamptz;
    r double precision;
    cut boolean;
BEGIN
    SELECT * INTO b FROM cognito_reset.rate_limits AS rl WHERE rl.key = p_key FOR UPDATE;
    IF NOT FOUND THEN
        RETURN NULL;
    END IF;
    t := clock_timestamp();
    b := cognito_reset.rate_window_rolled(b, t);
    r := cognito_reset.adaptive_rate(b, t);
    cut := r > 0 AND (b.decreased_at IS NULL OR t - b.decreased_at >= interval '1 second');
    UPDATE cognito_reset.rate_limits AS rl
    SET decreased_at = CASE WHEN cut THEN t ELSE b.decreased_at END,
        rate_before_decrease = CASE WHEN cut THEN r ELSE b.rate_before_decrease END,
        current_rate = CASE WHEN cut THEN greatest(least(b.floor_rate, b.rate), r * 0.7) ELSE least(r, b.current_rate) END,
        last_throttle_at = t,
        throttles = b.throttles + p_count,
        window_started_at = b.window_started_at,
        window_tokens = b.window_tokens,
        previous_window_tokens = b.previous_window_tokens,
        window_throttles = b.window_throttles + p_count,
        previous_window_throttles = b.previous_window_throttles,
        updated_at = t
    WHERE rl.key = p_key
    RETURNING rl.current_rate INTO r;
    RETURN r;
END
$$;

-- Each bucket as operators read it: ceiling, adaptive rate now, use and throttles in the last
-- minute (the current window plus the overlapping part of the previous one).
CREATE VIEW cognito_reset.rate_limit_status AS
SELECT
    b.key,
    b.rate AS ceiling,
    cognito_reset.adaptive_rate(b, now()) AS current_rate,
    b.burst,
    b.floor_rate,
    b.rate = 0 AS paused,
    w.tokens_last_minute,
    w.throttles_last_minute,
    b.last_throttle_at,
    b.tokens_granted,
    b.throttles,
    b.updated_at
FROM cognito_reset.rate_limits b
CROSS JOIN LATERAL (
    SELECT
        round(CASE WHEN e >= 120 THEN 0
                   WHEN e >= 60 THEN b.window_tokens * (1 - (e - 60) / 60)
                   ELSE b.window_tokens + b.previous_window_tokens * (1 - e / 60) END)::bigint AS tokens_last_minute,
        round(CASE WHEN e >= 120 THEN 0
                   WHEN e >= 60 THEN b.window_throttles * (1 - (e - 60) / 60)
                   ELSE b.window_throttles + b.previous_window_throttles * (1 - e / 60) END)::bigint AS throttles_last_minute
    FROM (SELECT extract(epoch FROM now() - b.window_started_at)::double precision AS e) AS elapsed
) AS w;

-- queue_status's effective rate is the adaptive rate in force now, not as of the last claim.
CREATE OR REPLACE VIEW cognito_reset.queue_status AS
SELECT
    (SELECT count(*) FROM cognito_reset.jobs WHERE state = 'pending')   AS pending,
    (SELECT count(*) FROM cognito_reset.jobs WHERE state = 'running')   AS running,
    (SELECT count(*) FROM cognito_reset.jobs WHERE state = 'retrying')  AS retrying,
    (SELECT count(*) FROM cognito_reset.jobs WHERE state = 'succeeded') AS succeeded,
    (SELECT count(*) FROM cognito_reset.jobs WHERE state = 'failed')    AS failed,
    (SELECT count(*) FROM cognito_reset.jobs WHERE state = 'cancelled') AS cancelled,
    runnable.runnable_now,
    (SELECT count(*) FROM cognito_reset.jobs
      WHERE state IN ('pending', 'retrying') AND run_at > now())        AS scheduled_later,
    runnable.oldest_runnable_age_seconds,
    (SELECT count(*) FROM cognito_reset.jobs
      WHERE state = 'succeeded' AND finished_at > now() - interval '1 minute') AS succeeded_last_minute,
    (SELECT count(*) FROM cognito_reset.jobs
      WHERE state = 'succeeded' AND finished_at > now() - interval '1 hour')   AS succeeded_last_hour,
    (SELECT count(*) FROM cognito_reset.jobs
      WHERE state = 'failed' AND finished_at > now() - interval '1 minute')    AS failed_last_minute,
    (SELECT count(*) FROM cognito_reset.jobs
      WHERE state = 'failed' AND finished_at > now() - interval '1 hour')      AS failed_last_hour,
    (SELECT count(*) FROM cognito_reset.workers
      WHERE state <> 'stopped' AND heartbeat_at > now() - interval '1 minute') AS workers_alive,
    (SELECT coalesce(sum(cognito_reset.adaptive_rate(b, now())), 0) FROM cognito_reset.rate_limits b) AS effective_rate
FROM (
    SELECT count(*) AS runnable_now,
           extract(epoch FROM now() - min(run_at))::double precision AS oldest_runnable_age_seconds
    FROM cognito_reset.jobs
    WHERE state IN ('pending', 'retrying') AND run_at <= now()
) AS runnable;


-- The new functions are owned by the schema owner but run as the caller (SECURITY INVOKER): the
-- worker's own grants apply. 0001 revoked EXECUTE from PUBLIC for everything in the schema.
REVOKE EXECUTE ON FUNCTION cognito_reset.claim_paced(text, integer, double precision, text, double precision, double precision),
    cognito_reset.report_throttles(text, integer),
    cognito_reset.adaptive_rate(cognito_reset.rate_limits, timestamptz),
    cognito_reset.rate_window_rolled(cognito_reset.rate_limits, timestamptz),
    cognito_reset.rate_limits_ceiling_changed() FROM PUBLIC;
GRANT EXECUTE ON FUNCTION cognito_reset.claim_paced(text, integer, double precision, text, double precision, double precision),
    cognito_reset.report_throttles(text, integer),
    cognito_reset.adaptive_rate(cognito_reset.rate_limits, timestamptz),
    cognito_reset.rate_window_rolled(cognito_reset.rate_limits, timestamptz)
    TO cognito_reset_worker;
-- A view's functions run with its reader's privileges: everyone who reads queue_status needs it.
GRANT EXECUTE ON FUNCTION cognito_reset.adaptive_rate(cognito_reset.rate_limits, timestamptz)
    TO cognito_reset_monitor, cognito_reset_enqueuer;
GRANT UPDATE (next_slot_at, rate) ON cognito_reset.imports TO cognito_reset_worker;
GRANT SELECT ON cognito_reset.rate_limit_status TO cognito_reset_worker, cognito_reset_monitor;
