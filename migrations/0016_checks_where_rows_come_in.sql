-- Checks where rows come in. PostgreSQL prepares every check of a table afresh for each
-- statement that writes it (it reads each expression back from the catalogue and plans it), and
-- with the jobs table's 26 checks that came to about a quarter of a millisecond per statement,
-- a fifth of the database's CPU per job (perf). So each check now sits only where a row can
-- break it (docs/design.md, "Storage"):
--   - the checks of what other systems send (pool id, username, metadata, priority, attempts,
--     idempotency key, requested_by, enqueued_by) on the hot partition alone: every row another
--     system inserts lands there (they may not set `state`), and history only receives rows that
--     were there, moved by the outcome statement, which changes none of those columns;
--   - jobs_state_known on the partition for unknown states, the only place such a row can land
--     (the other partitions' bounds already hold it), and the hot partition's jobs_active_states
--     and each day's bounds check are dropped: they only spared ATTACH a scan;
--   - the state invariants and the lengths of what the worker writes stay on every partition.
-- Two SQL functions the checks call for rare rows get a search_path: a function with settings
-- is never inlined, so a statement no longer parses their bodies while preparing the checks.
-- The exclusive lock is a catalogue change (no row is read); `cognito-reset migrate` prints how
-- long it was held. The moved checks are added NOT VALID (every row passed them a moment ago,
-- under this lock) and 0017 validates them without blocking writers.

-- 1. The exclusive locks, in the order writers take them, tried in short waits so that no claim
--    queues behind a migration that queues behind a long transaction.
DO $lock$
DECLARE
    started constant timestamptz := clock_timestamp();
BEGIN
    LOOP
        BEGIN
            PERFORM set_config('lock_timeout', '100ms', true);
            LOCK TABLE cognito_reset.jobs, cognito_reset.attempts IN ACCESS EXCLUSIVE MODE;
            PERFORM set_config('lock_timeout', '0', true);
            RETURN;
        EXCEPTION WHEN lock_not_available THEN
            -- The attempt's locks went with its subtransaction.
            IF clock_timestamp() - started > interval '10 minutes' THEN
                RAISE EXCEPTION 'could not lock the cognito_reset tables in 10 minutes: a long transaction holds one of them'
                    USING ERRCODE = 'lock_not_available', HINT = 'Migrate again once it has ended.';
            END IF;
            PERFORM pg_sleep(0.05 + random() * 0.1);
        END;
    END LOOP;
END
$lock$;
INSERT INTO cognito_reset.migration_locks (version, acquired_at) VALUES ('0016', clock_timestamp());

-- 2. The checks of what other systems send: from every partition to the hot one. (A database
--    upgraded from before 0008 may already hold some of them on the hot partition itself.)
DO $move$
DECLARE
    c record;
BEGIN
    FOR c IN
        SELECT conname, pg_get_constraintdef(oid) AS definition FROM pg_constraint
        WHERE conrelid = 'cognito_reset.jobs'::regclass AND contype = 'c'
          AND conname IN ('jobs_user_pool_id_format', 'jobs_username_length', 'jobs_client_metadata_string_map',
                          'jobs_priority_range', 'jobs_max_attempts_range', 'jobs_idempotency_key_length',
                          'jobs_requested_by_length', 'jobs_enqueued_by_length')
        ORDER BY conname
    LOOP
        EXECUTE format('ALTER TABLE cognito_reset.jobs DROP CONSTRAINT %I', c.conname);
        IF NOT EXISTS (SELECT FROM pg_constraint WHERE conrelid = 'cognito_reset.jobs_active'::regclass AND conname = c.conname) THEN
            EXECUTE format('ALTER TABLE cognito_reset.jobs_active ADD CONSTRAINT %I %s NOT VALID', c.conname, c.definition);
        END IF;
    END LOOP;
END
$move$;

-- 3. A state nobody knows can only land in the default partition: refused there, by name.
ALTER TABLE cognito_reset.jobs DROP CONSTRAINT jobs_state_known;
ALTER TABLE cognito_reset.jobs_state_unknown ADD CONSTRAINT jobs_state_known
    CHECK (state IN ('pending', 'running', 'retrying', 'succeeded', 'failed', 'cancelled'));

-- 4. Checks that only spared ATTACH a scan; the partition bounds hold the same.
ALTER TABLE cognito_reset.jobs_active DROP CONSTRAINT IF EXISTS jobs_active_states;
DO $bounds$
DECLARE
    c record;
BEGIN
    FOR c IN
        SELECT con.conrelid::regclass AS partition, con.conname FROM cognito_reset.history_partitions h
        JOIN pg_constraint con ON con.conrelid = to_regclass('cognito_reset.' || quote_ident(h.table_name))
                              AND con.conname = h.table_name || '_bounds'
    LOOP
        EXECUTE format('ALTER TABLE %s DROP CONSTRAINT %I', c.partition, c.conname);
    END LOOP;
END
$bounds$;

-- 5. Never inlined (see above); both name only pg_catalog's functions and operators.
ALTER FUNCTION cognito_reset.client_metadata_bytes(jsonb) SET search_path = pg_catalog, pg_temp;
ALTER FUNCTION cognito_reset.username_utf16_length(text) SET search_path = pg_catalog, pg_temp;

-- 6. New days are attached without a bounds check.
CREATE OR REPLACE FUNCTION cognito_reset.ensure_history_partitions(p_days integer DEFAULT 3) RETURNS integer
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp SET lock_timeout = '2s' SET TimeZone = 'UTC'
AS $$
DECLARE
    day timestamptz;
    last_day constant timestamptz := date_trunc('day', now() AT TIME ZONE 'UTC') AT TIME ZONE 'UTC'
                                     + make_interval(days => least(greatest(p_days, 0), 30));
    parent_name text;
    leaf text;
    created integer := 0;
BEGIN
    PERFORM pg_advisory_xact_lock(hashtext('cognito_reset.ensure_history_partitions'));
    FOREACH parent_name IN ARRAY ARRAY['jobs_finished', 'attempts'] LOOP
        SELECT max(upper_bound) INTO day FROM cognito_reset.history_partitions WHERE parent = parent_name;
        WHILE day <= last_day LOOP
            leaf := parent_name || '_p' || to_char(day AT TIME ZONE 'UTC', 'YYYYMMDD');
            IF parent_name = 'jobs_finished' THEN
                IF EXISTS (SELECT FROM cognito_reset.jobs_finished_default
                           WHERE finished_at >= day AND finished_at < day + interval '1 day') THEN
                    day := day + interval '1 day';
                    CONTINUE;
                END IF;
                EXECUTE format('CREATE TABLE cognito_reset.%I (LIKE cognito_reset.jobs INCLUDING DEFAULTS INCLUDING CONSTRAINTS)', leaf);
                -- `jobs show`, `jobs list` (newest first) and lookups of a finished job by id.
                EXECUTE format('CREATE INDEX %I ON cognito_reset.%I (id)', leaf || '_id', leaf);
            ELSE
                IF EXISTS (SELECT FROM cognito_reset.attempts_default
                           WHERE finished_at >= day AND finished_at < day + interval '1 day') THEN
                    day := day + interval '1 day';
                    CONTINUE;
                END IF;
                EXECUTE format('CREATE TABLE cognito_reset.%I (LIKE cognito_reset.attempts INCLUDING DEFAULTS INCLUDING CONSTRAINTS)', leaf);
                -- `jobs show` and the outcome statement's "written already" check (only for a batch
                -- sent again). BRIN: a day's calls come roughly in job order, and a block-range
                -- summary costs next to nothing to keep, where a B-tree entry per call did.
                EXECUTE format('CREATE INDEX %I ON cognito_reset.%I USING brin (job_id)', leaf || '_job_id', leaf);
            END IF;
            -- No bounds check: ATTACH's scan of a table created empty a moment ago reads nothing, and
            -- every check of a partition is prepared again by every statement that writes it.
            EXECUTE format('ALTER TABLE cognito_reset.%I ATTACH PARTITION cognito_reset.%I FOR VALUES FROM (%L) TO (%L)',
                           parent_name, leaf, day, day + interval '1 day');
            INSERT INTO cognito_reset.history_partitions (table_name, parent, lower_bound, upper_bound)
            VALUES (leaf, parent_name, day, day + interval '1 day');
            created := created + 1;
            day := day + interval '1 day';
        END LOOP;
    END LOOP;
    RETURN created;
END
$$;

UPDATE cognito_reset.migration_locks SET released_at = clock_timestamp() WHERE version = '0016';
