-- The claim's statement for a route without imports is the common case (every job enqueued
-- directly), and it no longer carries the imports' part: PostgreSQL initialises every node of a
-- statement's plan each time it runs it, and for a claim of a few jobs initialising the
-- imports' windows, joins and their UPDATE of `imports` cost more than claiming (docs/design.md,
-- "Storage"). A route with imports runs the full statement as before. Otherwise unchanged.
CREATE OR REPLACE FUNCTION cognito_reset.claim_paced(
    p_worker text, p_want integer, p_lease double precision, p_key text, p_default_rate double precision,
    p_horizon double precision DEFAULT 0.5, p_regions text[] DEFAULT NULL)
RETURNS TABLE (id bigint, user_pool_id text, username text, client_metadata jsonb, attempt integer,
               max_attempts integer, priority smallint, run_at timestamptz, claim_token bigint,
               call_in double precision, wait double precision, current_rate double precision,
               ceiling double precision, rate_key text, role_arn text, external_id text)
-- Its statements are planned once per session: planning them for every claim cost more than
-- running them. Never JIT-compiled: compiling took longer than any claim runs.
LANGUAGE plpgsql SET plan_cache_mode = force_generic_plan SET jit = off AS $$
DECLARE
    route record;
    v_key text;
    b cognito_reset.rate_limits;
    t timestamptz;
    r double precision;
    slot_base timestamptz;
    available integer;
    batch integer;
    import_ids bigint[];
    allowances integer[];
    import_bases timestamptz[];
    import_rates double precision[];
    import_wait double precision;
    imp record;
    imp_base timestamptz;
    remaining integer := p_want;
    claimed integer;
    n integer;
    route_wait double precision;
    wait_s double precision;
    rate_sum double precision;
    ceiling_max double precision;
BEGIN
    IF p_want < 1 OR p_horizon <= 0 THEN
        RAISE EXCEPTION 'claim_paced: p_want must be at least 1 and p_horizon above 0' USING ERRCODE = '22023';
    END IF;
    -- The routes with runnable jobs, from skip scans (one index probe per pool and per import's
    -- pool, however many jobs each holds).
    FOR route IN
        WITH RECURSIVE direct_pools(pool) AS (
            (SELECT j.user_pool_id FROM cognito_reset.jobs_active j
             WHERE j.import_id IS NULL ORDER BY j.user_pool_id LIMIT 1)
            UNION ALL
            SELECT (SELECT j.user_pool_id FROM cognito_reset.jobs_active j
                    WHERE j.import_id IS NULL AND j.user_pool_id > d.pool ORDER BY j.user_pool_id LIMIT 1)
            FROM direct_pools d WHERE d.pool IS NOT NULL
        ), active_imports(import_id) AS (
            (SELECT j.import_id FROM cognito_reset.jobs_active j
             WHERE j.import_id IS NOT NULL ORDER BY j.import_id LIMIT 1)
            UNION ALL
            SELECT (SELECT j.import_id FROM cognito_reset.jobs_active j
                    WHERE j.import_id IS NOT NULL AND j.import_id > a.import_id ORDER BY j.import_id LIMIT 1)
            FROM active_imports a WHERE a.import_id IS NOT NULL
        ), import_pools(import_id, pool) AS (
            SELECT a.import_id,
                   (SELECT j.user_pool_id FROM cognito_reset.jobs_active j
                    WHERE j.import_id = a.import_id ORDER BY j.user_pool_id LIMIT 1)
            FROM active_imports a WHERE a.import_id IS NOT NULL
            UNION ALL
            SELECT i.import_id,
                   (SELECT j.user_pool_id FROM cognito_reset.jobs_active j
                    WHERE j.import_id = i.import_id AND j.user_pool_id > i.pool ORDER BY j.user_pool_id LIMIT 1)
            FROM import_pools i WHERE i.pool IS NOT NULL
        ), pools AS (
            SELECT NULL::bigint AS import_id, d.pool FROM direct_pools d
            WHERE d.pool IS NOT NULL
              AND EXISTS (SELECT FROM cognito_reset.runnable_jobs j WHERE j.import_id IS NULL AND j.user_pool_id = d.pool)
            UNION ALL
            SELECT i.import_id, i.pool FROM import_pools i
            WHERE i.pool IS NOT NULL
              AND EXISTS (SELECT FROM cognito_reset.runnable_jobs j WHERE j.import_id = i.import_id AND j.user_pool_id = i.pool)
        )
        SELECT cognito_reset.pool_region(p.pool) AS region, pr.account_id,
               coalesce(array_agg(p.pool) FILTER (WHERE p.import_id IS NULL), '{}') AS direct_pools,
               coalesce(array_agg(p.import_id) FILTER (WHERE p.import_id IS NOT NULL), '{}') AS imp_ids,
               coalesce(array_agg(p.pool) FILTER (WHERE p.import_id IS NOT NULL), '{}') AS imp_pools
        FROM pools p LEFT JOIN cognito_reset.pool_roles pr ON pr.user_pool_id = p.pool
        WHERE p_regions IS NULL OR cognito_reset.pool_region(p.pool) = ANY (p_regions)
        GROUP BY 1, 2
        ORDER BY random()
    LOOP
        EXIT WHEN remaining = 0;
        n := 0;
        route_wait := NULL;
        IF p_key IS NULL THEN
            -- --rate unlimited: no bucket; every job is called at once (an import's own rate still holds).
            v_key := NULL;
            t := clock_timestamp();
            r := 'Infinity';
            slot_base := t;
            batch := remaining;
            n := remaining;
        ELSE
            v_key := CASE WHEN route.account_id IS NULL THEN replace(p_key, '{region}', route.region)
                          ELSE 'cognito:' || route.account_id || ':' || route.region END;
            SELECT * INTO b FROM cognito_reset.rate_limits AS rl WHERE rl.key = v_key FOR UPDATE;
            IF NOT FOUND THEN
                INSERT INTO cognito_reset.rate_limits AS rl (key, rate, burst, current_rate)
                VALUES (v_key, p_default_rate, 1, p_default_rate)
                ON CONFLICT (key) DO NOTHING;
                SELECT * INTO b FROM cognito_reset.rate_limits AS rl WHERE rl.key = v_key FOR UPDATE;
            END IF;
            -- After the row lock: another fleet member may have held it for a moment.
            t := clock_timestamp();
            b := cognito_reset.rate_window_rolled(b, t);
            r := cognito_reset.adaptive_rate(b, t);
            rate_sum := coalesce(rate_sum, 0) + r;
            ceiling_max := greatest(ceiling_max, b.rate);
            IF r <= 0 THEN
                -- Paused (ceiling 0): look again in a second.
                route_wait := 1.0;
            ELSE
                -- An idle bucket allows a burst, but never more than one second's worth at the current rate.
                slot_base := greatest(coalesce(b.next_slot_at, t),
                                      t - make_interval(secs => (least(b.burst, greatest(1, r)) - 1) / r));
                available := CASE WHEN slot_base > t + make_interval(secs => p_horizon) THEN 0
                                  ELSE floor(extract(epoch FROM t + make_interval(secs => p_horizon) - slot_base) * r)::integer + 1 END;
                batch := least(remaining, greatest(1, floor(r * p_horizon / 2)::integer));
                IF available < batch THEN
                    route_wait := greatest(0.001, extract(epoch FROM slot_base + make_interval(secs => (batch - 1) / r - p_horizon) - t));
                ELSE
                    n := least(remaining, available);
                END IF;
            END IF;
        END IF;

        -- The route's imports, each allowed as many jobs as its own rate has slots free at t
        -- (read again for every route: the one before may have used some).
        import_ids := '{}'; allowances := '{}'; import_bases := '{}'; import_rates := '{}';
        IF cardinality(route.imp_ids) > 0 THEN
            FOR imp IN SELECT i.id, i.rate, i.next_slot_at FROM cognito_reset.imports i
                       WHERE i.id = ANY (route.imp_ids)
            LOOP
                IF imp.rate IS NULL THEN
                    import_ids := import_ids || imp.id;
                    allowances := allowances || remaining;
                    import_bases := import_bases || t;
                    import_rates := import_rates || 'Infinity'::double precision;
                ELSE
                    imp_base := greatest(coalesce(imp.next_slot_at, t), t);
                    IF imp_base <= t + make_interval(secs => p_horizon) THEN
                        import_ids := import_ids || imp.id;
                        allowances := allowances || least(remaining,
                            floor(extract(epoch FROM t + make_interval(secs => p_horizon) - imp_base) * imp.rate)::integer + 1);
                        import_bases := import_bases || imp_base;
                        import_rates := import_rates || imp.rate;
                    ELSE
                        -- Held back by its own rate: come back when its next slot is within reach.
                        import_wait := least(import_wait,
                            extract(epoch FROM imp_base - make_interval(secs => p_horizon) - t)::double precision);
                    END IF;
                END IF;
            END LOOP;
        END IF;

        -- Only imports held back by their own rate: nothing to claim on this route now.
        IF cardinality(import_ids) = 0 AND cardinality(route.direct_pools) = 0 THEN
            n := 0;
        END IF;
        claimed := 0;
        IF n > 0 AND cardinality(import_ids) = 0 THEN
            RETURN QUERY
            WITH chosen AS (
                SELECT c.id, row_number() OVER (ORDER BY c.priority, c.run_at, c.id) - 1 AS slot
                FROM unnest(route.direct_pools) AS p(pool)
                CROSS JOIN LATERAL (
                    SELECT j.id, j.priority, j.run_at
                    FROM cognito_reset.runnable_jobs j
                    WHERE j.import_id IS NULL AND j.user_pool_id = p.pool
                    ORDER BY j.priority, j.run_at, j.id
                    LIMIT n
                    FOR UPDATE SKIP LOCKED
                ) c
                ORDER BY c.priority, c.run_at, c.id
                LIMIT n
            ), claimed_jobs AS (
                UPDATE cognito_reset.jobs_active AS j
                SET state = 'running', locked_by = p_worker, attempt = j.attempt + 1, started_at = now(),
                    lease_expires_at = now() + make_interval(secs => p_lease)
                FROM chosen WHERE j.id = chosen.id AND j.id = ANY (ARRAY(SELECT c.id FROM chosen c))
                RETURNING j.id, j.user_pool_id, j.username, j.client_metadata, j.attempt, j.max_attempts, j.priority,
                          j.run_at, (extract(epoch FROM j.started_at) * 1000000)::bigint AS claim_token, chosen.slot
            )
            SELECT cj.id, cj.user_pool_id, cj.username, cj.client_metadata, cj.attempt, cj.max_attempts, cj.priority,
                   cj.run_at, cj.claim_token,
                   greatest(0, extract(epoch FROM slot_base + make_interval(secs => cj.slot / r) - t))::double precision,
                   NULL::double precision, r, b.rate, v_key, pr.role_arn, pr.external_id
            FROM claimed_jobs cj
            LEFT JOIN cognito_reset.pool_roles pr ON pr.user_pool_id = cj.user_pool_id;
            GET DIAGNOSTICS claimed = ROW_COUNT;
            remaining := remaining - claimed;
            route_wait := CASE WHEN claimed > 0
                 THEN greatest(0, extract(epoch FROM slot_base + make_interval(secs => (claimed + batch - 1) / r - p_horizon) - t))
                 WHEN import_wait IS NOT NULL THEN greatest(0.001, import_wait) END;
        ELSIF n > 0 THEN
            RETURN QUERY
            WITH direct AS (
                SELECT c.id, c.priority, c.run_at, NULL::bigint AS import_id
                FROM unnest(route.direct_pools) AS p(pool)
                CROSS JOIN LATERAL (
                    SELECT j.id, j.priority, j.run_at
                    FROM cognito_reset.runnable_jobs j
                    WHERE j.import_id IS NULL AND j.user_pool_id = p.pool
                    ORDER BY j.priority, j.run_at, j.id
                    LIMIT n
                    FOR UPDATE SKIP LOCKED
                ) c
            ), imported AS (
                SELECT c.id, c.priority, c.run_at, s.import_id
                FROM unnest(route.imp_ids, route.imp_pools) AS s(import_id, pool)
                JOIN unnest(import_ids, allowances) AS a(import_id, allowance) ON a.import_id = s.import_id
                CROSS JOIN LATERAL (
                    SELECT j.id, j.priority, j.run_at
                    FROM cognito_reset.runnable_jobs j
                    WHERE j.import_id = s.import_id AND j.user_pool_id = s.pool
                    ORDER BY j.priority, j.run_at, j.id
                    LIMIT least(a.allowance, n)
                    FOR UPDATE SKIP LOCKED
                ) c
            ), chosen AS (
                SELECT z.id, z.import_id, z.import_slot,
                       row_number() OVER (ORDER BY z.priority, z.run_at, z.id) - 1 AS slot
                FROM (
                    SELECT y.*, row_number() OVER (PARTITION BY y.import_id ORDER BY y.priority, y.run_at, y.id) - 1 AS import_slot
                    FROM (SELECT * FROM direct UNION ALL SELECT * FROM imported) y
                ) z
                -- An import takes at most its allowance, however many of its pools have jobs.
                LEFT JOIN unnest(import_ids, allowances) AS a(import_id, allowance) ON a.import_id = z.import_id
                WHERE z.import_id IS NULL OR z.import_slot < a.allowance
                ORDER BY z.priority, z.run_at, z.id
                LIMIT n
            ), claimed_jobs AS (
                UPDATE cognito_reset.jobs_active AS j
                SET state = 'running', locked_by = p_worker, attempt = j.attempt + 1, started_at = now(),
                    lease_expires_at = now() + make_interval(secs => p_lease)
                -- The id list lets the generic plan, which cannot know how few rows chosen holds,
                -- probe the primary key instead of hashing the whole partition.
                FROM chosen WHERE j.id = chosen.id AND j.id = ANY (ARRAY(SELECT c.id FROM chosen c))
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
                   NULL::double precision, r, b.rate, v_key, pr.role_arn, pr.external_id
            FROM claimed_jobs cj
            LEFT JOIN unnest(import_ids, import_bases, import_rates) AS l(import_id, base, rate) ON l.import_id = cj.import_id
            LEFT JOIN cognito_reset.pool_roles pr ON pr.user_pool_id = cj.user_pool_id;
            GET DIAGNOSTICS claimed = ROW_COUNT;
            remaining := remaining - claimed;
            route_wait := CASE WHEN claimed > 0
                 -- Jobs came: when the next batch of slots will be free, so the worker need not ask before.
                 THEN greatest(0, extract(epoch FROM slot_base + make_interval(secs => (claimed + batch - 1) / r - p_horizon) - t))
                 WHEN import_wait IS NOT NULL THEN greatest(0.001, import_wait) END;
        END IF;
        wait_s := least(wait_s, route_wait);

        IF v_key IS NOT NULL THEN
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
            WHERE rl.key = v_key;
        END IF;
    END LOOP;
    RETURN QUERY SELECT NULL::bigint, NULL::text, NULL::text, NULL::jsonb, NULL::integer, NULL::integer,
        NULL::smallint, NULL::timestamptz, NULL::bigint, NULL::double precision,
        -- A full claim may ask again at once; otherwise when the earliest route has slots again
        -- (NULL: nothing runnable in the regions served).
        CASE WHEN remaining = 0 THEN coalesce(wait_s, 0)
             ELSE coalesce(wait_s, CASE WHEN import_wait IS NOT NULL THEN greatest(0.001, import_wait) END) END,
        rate_sum, ceiling_max, NULL::text, NULL::text, NULL::text;
END
$$;

