-- The lean queue: `cognito_reset.jobs` becomes a table partitioned by state. Active jobs
-- (pending, running, retrying) live in the small hot partition `jobs_active`, the only one that
-- claims, leases, rescues and wake-ups touch; a job that finishes moves once into `jobs_finished`,
-- itself partitioned by day of `finished_at`, so retention drops whole days instead of deleting
-- row by row. The audit (`attempts`) is partitioned by day the same way. docs/design.md explains
-- the choice and the measurements behind it.
--
-- The SQL contract holds: INSERT INTO cognito_reset.jobs (user_pool_id, username) VALUES (...),
-- with or without RETURNING id; every job readable by id in cognito_reset.jobs in every state;
-- enqueue_reset; row security and the three roles. What changes for an enqueuer (README): an
-- INSERT ... ON CONFLICT can no longer name a conflict target (a partitioned table has no unique
-- index of its own over (user_pool_id, username)); ON CONFLICT DO NOTHING without one still works.
--
-- The switch on a live database: the hot partition was built and kept current by 0006 and 0007
-- and is only attached here; the old table keeps its finished rows and becomes the first history
-- partition (below the bound set by 0006), the old audit the audit's; nothing else is copied.
-- The exclusive lock this takes lasts as long as deleting the active rows from the old table and
-- checking that no other is left; `cognito-reset migrate` prints how long it was held.

-- Days are UTC days whatever the session's time zone (adding a day follows its daylight saving).
SET LOCAL TimeZone = 'UTC';

-- 1. The exclusive locks, taken in the order every other writer takes them, retried in short
--    waits so that no claim queues behind a migration that queues behind a long transaction.
SELECT cognito_reset.lock_in_short_tries(
    'LOCK TABLE cognito_reset.imports, cognito_reset.jobs, cognito_reset.attempts IN ACCESS EXCLUSIVE MODE');
DROP FUNCTION cognito_reset.lock_in_short_tries(text);

-- How long each migration held its exclusive locks, for `cognito-reset migrate` to print.
CREATE TABLE cognito_reset.migration_locks (
    version     text PRIMARY KEY,
    acquired_at timestamptz NOT NULL,
    released_at timestamptz
);
INSERT INTO cognito_reset.migration_locks (version, acquired_at) VALUES ('0008', clock_timestamp());

-- 2. The copy of the active jobs is complete and current (0006's trigger, 0007's batches); it is
--    counted to be sure, and made again here if it is not (say the trigger was disabled by hand).
DROP TRIGGER jobs_mirror_active ON cognito_reset.jobs;
DROP FUNCTION cognito_reset.mirror_active_job();
DROP PROCEDURE cognito_reset.copy_active_jobs(integer);
DO $check$
BEGIN
    IF (SELECT count(*) FROM cognito_reset.jobs WHERE state IN ('pending', 'running', 'retrying'))
       <> (SELECT count(*) FROM cognito_reset.jobs_active) THEN
        RAISE NOTICE 'the copy of the active jobs differs from the table: copying them again';
        DELETE FROM cognito_reset.jobs_active;
        INSERT INTO cognito_reset.jobs_active SELECT * FROM cognito_reset.jobs WHERE state IN ('pending', 'running', 'retrying');
    END IF;
END
$check$;

-- 3. The old table and its audit step aside under names of their own.
ALTER TABLE cognito_reset.jobs RENAME TO jobs_before_lean_queue;
ALTER INDEX cognito_reset.jobs_pkey RENAME TO jobs_before_lean_queue_pkey;
ALTER INDEX cognito_reset.jobs_user RENAME TO jobs_before_lean_queue_user;
ALTER INDEX cognito_reset.jobs_import_id RENAME TO jobs_before_lean_queue_import_id;
ALTER INDEX cognito_reset.jobs_one_active_per_user RENAME TO jobs_before_lean_queue_active;
ALTER TABLE cognito_reset.jobs_before_lean_queue RENAME CONSTRAINT jobs_idempotency_key_unique TO jobs_before_lean_queue_idempotency_key_unique;
-- Only history stays here: what served claims, leases and listing by state goes.
DROP INDEX cognito_reset.jobs_claimable, cognito_reset.jobs_claimable_direct, cognito_reset.jobs_claimable_by_import,
    cognito_reset.jobs_waiting_run_at, cognito_reset.jobs_running_leases, cognito_reset.jobs_running_by_worker,
    cognito_reset.jobs_state_id, cognito_reset.jobs_finished_at;
-- 0005's input checks guard what enters the queue, not history (they are NOT VALID here, for
-- rows from before them, yet would still refuse a job finishing into this partition).
ALTER TABLE cognito_reset.jobs_before_lean_queue DROP CONSTRAINT jobs_client_metadata_size,
    DROP CONSTRAINT jobs_run_at_finite, DROP CONSTRAINT jobs_run_at_range,
    DROP CONSTRAINT jobs_username_characters, DROP CONSTRAINT jobs_username_utf16_length;
DROP TRIGGER jobs_notify_insert ON cognito_reset.jobs_before_lean_queue;
DROP POLICY jobs_enqueuer_reads_own ON cognito_reset.jobs_before_lean_queue;
DROP POLICY jobs_enqueuer_inserts_own ON cognito_reset.jobs_before_lean_queue;
DROP POLICY jobs_worker_all ON cognito_reset.jobs_before_lean_queue;
ALTER TABLE cognito_reset.jobs_before_lean_queue DISABLE ROW LEVEL SECURITY;
REVOKE ALL ON cognito_reset.jobs_before_lean_queue FROM cognito_reset_enqueuer, cognito_reset_worker, cognito_reset_monitor;
REVOKE INSERT (user_pool_id, username, client_metadata, priority, max_attempts, run_at, idempotency_key,
               requested_by, import_id) ON cognito_reset.jobs_before_lean_queue FROM cognito_reset_enqueuer;

ALTER TABLE cognito_reset.attempts RENAME TO attempts_before_lean_queue;
ALTER INDEX cognito_reset.attempts_pkey RENAME TO attempts_before_lean_queue_pkey;
ALTER INDEX cognito_reset.attempts_job_id RENAME TO attempts_before_lean_queue_job_id;
DROP INDEX cognito_reset.attempts_finished_at;
ALTER TABLE cognito_reset.attempts_before_lean_queue DROP CONSTRAINT attempts_job_id_fkey;
DROP TRIGGER attempts_append_only ON cognito_reset.attempts_before_lean_queue;
REVOKE ALL ON cognito_reset.attempts_before_lean_queue FROM cognito_reset_worker;

-- Identity columns cannot be a partitioned table's (PostgreSQL 15): ids come from sequences
-- that carry on where the old ones stopped. An enqueuer still cannot choose an id (it may insert
-- only the request's columns).
CREATE SEQUENCE cognito_reset.job_ids AS bigint;
CREATE SEQUENCE cognito_reset.attempt_ids AS bigint;
SELECT setval('cognito_reset.job_ids', coalesce((SELECT max(id) FROM cognito_reset.jobs_before_lean_queue), 0) + 1, false);
SELECT setval('cognito_reset.attempt_ids', coalesce((SELECT max(id) FROM cognito_reset.attempts_before_lean_queue), 0) + 1, false);
ALTER TABLE cognito_reset.jobs_before_lean_queue ALTER COLUMN id DROP IDENTITY;
ALTER TABLE cognito_reset.attempts_before_lean_queue ALTER COLUMN id DROP IDENTITY;

-- 4. The partitioned table, with the same columns in the same order and the same checks.
CREATE TABLE cognito_reset.jobs (
    id                 bigint NOT NULL DEFAULT nextval('cognito_reset.job_ids'),
    user_pool_id       text NOT NULL
        CONSTRAINT jobs_user_pool_id_format
        CHECK (char_length(user_pool_id) BETWEEN 1 AND 55 AND user_pool_id ~ '^[A-Za-z0-9_-]+_[0-9A-Za-z]+$'),
    username           text NOT NULL
        CONSTRAINT jobs_username_length CHECK (char_length(username) BETWEEN 1 AND 128),
    client_metadata    jsonb
        CONSTRAINT jobs_client_metadata_string_map
        CHECK (client_metadata IS NULL OR (jsonb_typeof(client_metadata) = 'object'
               AND NOT jsonb_path_exists(client_metadata, 'strict $.* ? (@.type() != "string")'))),
    state              text NOT NULL DEFAULT 'pending'
        CONSTRAINT jobs_state_known
        CHECK (state IN ('pending', 'running', 'retrying', 'succeeded', 'failed', 'cancelled')),
    priority           smallint NOT NULL DEFAULT 100
        CONSTRAINT jobs_priority_range CHECK (priority BETWEEN 0 AND 1000),
    attempt            integer NOT NULL DEFAULT 0 CONSTRAINT jobs_attempt_nonnegative CHECK (attempt >= 0),
    max_attempts       integer NOT NULL DEFAULT 10
        CONSTRAINT jobs_max_attempts_range CHECK (max_attempts BETWEEN 1 AND 100),
    run_at             timestamptz NOT NULL DEFAULT now(),
    created_at         timestamptz NOT NULL DEFAULT now(),
    started_at         timestamptz,
    finished_at        timestamptz,
    locked_by          text,
    lease_expires_at   timestamptz,
    last_error_code    text CONSTRAINT jobs_last_error_code_length CHECK (char_length(last_error_code) <= 200),
    last_error_message text CONSTRAINT jobs_last_error_message_length CHECK (char_length(last_error_message) <= 2000),
    cognito_request_id text CONSTRAINT jobs_cognito_request_id_length CHECK (char_length(cognito_request_id) <= 200),
    import_id          bigint,
    idempotency_key    text
        CONSTRAINT jobs_idempotency_key_length CHECK (char_length(idempotency_key) BETWEEN 1 AND 255),
    requested_by       text DEFAULT current_user
        CONSTRAINT jobs_requested_by_length CHECK (char_length(requested_by) <= 255),
    enqueued_by        text NOT NULL DEFAULT current_user
        CONSTRAINT jobs_enqueued_by_length CHECK (char_length(enqueued_by) BETWEEN 1 AND 255),
    CONSTRAINT jobs_attempt_within_max CHECK (attempt <= max_attempts),
    CONSTRAINT jobs_finished_at_iff_finished
        CHECK ((state IN ('succeeded', 'failed', 'cancelled')) = (finished_at IS NOT NULL)),
    CONSTRAINT jobs_lease_iff_running
        CHECK ((state = 'running') = (locked_by IS NOT NULL AND lease_expires_at IS NOT NULL)),
    CONSTRAINT jobs_locked_by_only_when_running CHECK (state = 'running' OR locked_by IS NULL),
    CONSTRAINT jobs_running_has_started CHECK (state <> 'running' OR started_at IS NOT NULL),
    CONSTRAINT jobs_succeeded_was_attempted CHECK (state <> 'succeeded' OR attempt >= 1)
) PARTITION BY LIST (state);

-- The hot partition (built by 0006, its indexes named after the statements that need them there).
-- Its check of the active states spares ATTACH a scan.
ALTER TABLE cognito_reset.jobs ATTACH PARTITION cognito_reset.jobs_active FOR VALUES IN ('pending', 'running', 'retrying');

-- A row in no known state lands here and is refused by jobs_state_known (without this
-- partition, routing would refuse it first, with no constraint name).
CREATE TABLE cognito_reset.jobs_state_unknown PARTITION OF cognito_reset.jobs DEFAULT;

-- History, by day of finished_at (UTC days).
CREATE TABLE cognito_reset.jobs_finished PARTITION OF cognito_reset.jobs
    FOR VALUES IN ('succeeded', 'failed', 'cancelled')
    PARTITION BY RANGE (finished_at);
CREATE TABLE cognito_reset.jobs_finished_default PARTITION OF cognito_reset.jobs_finished DEFAULT;

-- 5. The old table keeps history only and becomes history's first partition; the hot
--    partition's indexes take their names.
DELETE FROM cognito_reset.jobs_before_lean_queue WHERE state IN ('pending', 'running', 'retrying');
DROP INDEX cognito_reset.jobs_before_lean_queue_active;
ALTER INDEX cognito_reset.jobs_active_user_next RENAME TO jobs_one_active_per_user;
ALTER INDEX cognito_reset.jobs_active_claimable_direct_next RENAME TO jobs_claimable_direct;
ALTER INDEX cognito_reset.jobs_active_claimable_by_import_next RENAME TO jobs_claimable_by_import;
ALTER INDEX cognito_reset.jobs_active_run_at_next RENAME TO jobs_run_at;
-- The import reference, checked by 0009 outside this lock (the rows passed it in the old table).
ALTER TABLE cognito_reset.jobs_active
    ADD CONSTRAINT jobs_import_id_fkey FOREIGN KEY (import_id) REFERENCES cognito_reset.imports (id) NOT VALID;

DO $attach$
DECLARE
    b constant timestamptz := (SELECT bound FROM cognito_reset.history_bound);
BEGIN
    -- A valid check that implies the partition's bounds spares ATTACH its own scan; this one is
    -- the switch's only scan of history (the audit's was done by 0006 without a blocking lock).
    EXECUTE format('ALTER TABLE cognito_reset.jobs_before_lean_queue ADD CONSTRAINT jobs_before_lean_queue_is_history '
                   'CHECK (state IN (''succeeded'', ''failed'', ''cancelled'') AND finished_at IS NOT NULL AND finished_at < %L)', b);
    EXECUTE format('ALTER TABLE cognito_reset.jobs_finished ATTACH PARTITION cognito_reset.jobs_before_lean_queue '
                   'FOR VALUES FROM (MINVALUE) TO (%L)', b);
END
$attach$;

-- 6. The audit, partitioned by day of finished_at like history. Its rows are kept until their
--    job is pruned (prune_history drops a day only when no job still kept is older).
CREATE TABLE cognito_reset.attempts (
    id            bigint NOT NULL DEFAULT nextval('cognito_reset.attempt_ids'),
    job_id        bigint NOT NULL,
    attempt       integer NOT NULL CONSTRAINT attempts_attempt_positive CHECK (attempt >= 1),
    worker_id     text NOT NULL CONSTRAINT attempts_worker_id_length CHECK (char_length(worker_id) BETWEEN 1 AND 200),
    started_at    timestamptz NOT NULL,
    finished_at   timestamptz NOT NULL,
    outcome       text NOT NULL
        CONSTRAINT attempts_outcome_known
        CHECK (outcome IN ('succeeded', 'permanent_error', 'transient_error', 'throttled',
                           'credentials_error', 'lease_expired')),
    error_code    text CONSTRAINT attempts_error_code_length CHECK (char_length(error_code) <= 200),
    error_message text CONSTRAINT attempts_error_message_length CHECK (char_length(error_message) <= 2000),
    request_id    text CONSTRAINT attempts_request_id_length CHECK (char_length(request_id) <= 200),
    latency_ms    integer CONSTRAINT attempts_latency_nonnegative CHECK (latency_ms >= 0),
    CONSTRAINT attempts_finished_after_started CHECK (finished_at >= started_at),
    CONSTRAINT attempts_success_has_no_error CHECK (outcome <> 'succeeded' OR error_code IS NULL)
) PARTITION BY RANGE (finished_at);
CREATE TABLE cognito_reset.attempts_default PARTITION OF cognito_reset.attempts DEFAULT;
-- `jobs show` and the outcome statement's "written already" check (see ensure_history_partitions).
CREATE INDEX attempts_job_id_default ON cognito_reset.attempts_default USING brin (job_id);
DO $attach$
DECLARE
    b constant timestamptz := (SELECT bound FROM cognito_reset.history_bound);
BEGIN
    EXECUTE format('ALTER TABLE cognito_reset.attempts ATTACH PARTITION cognito_reset.attempts_before_lean_queue '
                   'FOR VALUES FROM (MINVALUE) TO (%L)', b);
END
$attach$;
ALTER TABLE cognito_reset.attempts_before_lean_queue DROP CONSTRAINT attempts_before_history_bound;

CREATE TRIGGER attempts_append_only BEFORE UPDATE ON cognito_reset.attempts
    FOR EACH ROW EXECUTE FUNCTION cognito_reset.attempts_are_append_only();

-- 7. History's partitions, known by their bounds (NULL: unbounded; both NULL: the default).
--    min_created_at, once a day is over, spares prune a scan of it.
CREATE TABLE cognito_reset.history_partitions (
    table_name     text PRIMARY KEY,
    parent         text NOT NULL CONSTRAINT history_partitions_parent_known CHECK (parent IN ('jobs_finished', 'attempts')),
    lower_bound    timestamptz,
    upper_bound    timestamptz,
    min_created_at timestamptz
);
INSERT INTO cognito_reset.history_partitions (table_name, parent, lower_bound, upper_bound)
SELECT 'jobs_before_lean_queue', 'jobs_finished', NULL::timestamptz, bound FROM cognito_reset.history_bound
UNION ALL SELECT 'attempts_before_lean_queue', 'attempts', NULL, bound FROM cognito_reset.history_bound
UNION ALL SELECT 'jobs_finished_default', 'jobs_finished', NULL, NULL::timestamptz
UNION ALL SELECT 'attempts_default', 'attempts', NULL, NULL;

-- Creates the daily partitions of history and the audit from the last one up to p_days days
-- ahead. Each is created empty and attached (a SHARE UPDATE EXCLUSIVE lock on the parent: claims
-- and outcomes carry on). A day whose rows already went to the default partition (nobody ran
-- this for days, or a worker's clock runs days ahead) is skipped and its rows left there; prune
-- deletes them row by row. Workers call it as they start and every hour; two at once take turns
-- (an advisory lock).
CREATE FUNCTION cognito_reset.ensure_history_partitions(p_days integer DEFAULT 3) RETURNS integer
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
            EXECUTE format('ALTER TABLE cognito_reset.%I ADD CONSTRAINT %I CHECK (finished_at >= %L AND finished_at < %L)',
                           leaf, leaf || '_bounds', day, day + interval '1 day');
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
SELECT cognito_reset.ensure_history_partitions();

-- 8. Idempotency keys are unique across every state, and a partitioned table cannot have a
--    unique index that leaves out its partition key: the keys live in a table of their own,
--    written by a trigger (only for rows that have one) and removed with their job by prune.
CREATE TABLE cognito_reset.idempotency_keys (
    idempotency_key text NOT NULL CONSTRAINT jobs_idempotency_key_unique PRIMARY KEY,
    job_id          bigint NOT NULL,
    user_pool_id    text NOT NULL,
    username        text NOT NULL
);
INSERT INTO cognito_reset.idempotency_keys
SELECT idempotency_key, id, user_pool_id, username FROM cognito_reset.jobs_before_lean_queue WHERE idempotency_key IS NOT NULL
UNION ALL
SELECT idempotency_key, id, user_pool_id, username FROM cognito_reset.jobs_active WHERE idempotency_key IS NOT NULL;

CREATE FUNCTION cognito_reset.idempotency_key_taken() RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    INSERT INTO cognito_reset.idempotency_keys (idempotency_key, job_id, user_pool_id, username)
    VALUES (NEW.idempotency_key, NEW.id, NEW.user_pool_id, NEW.username)
    ON CONFLICT (idempotency_key) DO NOTHING;
    -- A job coming back from history (`jobs retry`) finds its own key.
    IF NOT FOUND AND NOT EXISTS (SELECT FROM cognito_reset.idempotency_keys k
                                 WHERE k.idempotency_key = NEW.idempotency_key AND k.job_id = NEW.id) THEN
        RAISE EXCEPTION 'duplicate key value violates unique constraint "jobs_idempotency_key_unique"'
            USING ERRCODE = 'unique_violation', CONSTRAINT = 'jobs_idempotency_key_unique',
                  TABLE = 'jobs', SCHEMA = 'cognito_reset';
    END IF;
    RETURN NULL;
END
$$;
-- AFTER, not BEFORE: a BEFORE row trigger would make COPY insert row by row.
CREATE TRIGGER jobs_idempotency_key AFTER INSERT ON cognito_reset.jobs_active
    FOR EACH ROW WHEN (NEW.idempotency_key IS NOT NULL) EXECUTE FUNCTION cognito_reset.idempotency_key_taken();

CREATE TRIGGER jobs_notify_insert AFTER INSERT ON cognito_reset.jobs
    FOR EACH STATEMENT EXECUTE FUNCTION cognito_reset.notify_jobs_inserted();

-- 9. "Runnable", defined once: queued (pending or retrying, attempts left) and due. The claim,
--    the wake-up timer, --drain, queue_status, `status` and the metrics all read these views.
CREATE VIEW cognito_reset.queued_jobs AS
SELECT * FROM cognito_reset.jobs_active
WHERE state IN ('pending', 'retrying') AND attempt < max_attempts;
CREATE VIEW cognito_reset.runnable_jobs AS
SELECT * FROM cognito_reset.queued_jobs WHERE run_at <= now();

CREATE OR REPLACE FUNCTION cognito_reset.active_job_id(user_pool_id text, username text) RETURNS bigint
LANGUAGE sql STABLE SECURITY DEFINER SET search_path = pg_catalog, pg_temp
AS $$
    SELECT j.id FROM cognito_reset.jobs_active j WHERE j.user_pool_id = $1 AND j.username = $2
$$;

CREATE OR REPLACE FUNCTION cognito_reset.idempotency_key_job(idempotency_key text, user_pool_id text, username text,
    OUT job_id bigint, OUT same_user boolean)
LANGUAGE sql STABLE SECURITY DEFINER SET search_path = pg_catalog, pg_temp
AS $$
    SELECT k.job_id, k.user_pool_id = $2 AND k.username = $3 FROM cognito_reset.idempotency_keys k WHERE k.idempotency_key = $1
$$;

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
    -- A few rounds at most: a conflicting job may finish, or a key be taken, between our steps.
    FOR round IN 1..5 LOOP
        IF idempotency_key IS NOT NULL THEN
            SELECT * INTO existing FROM cognito_reset.idempotency_key_job(idempotency_key, user_pool_id, username);
            IF existing.job_id IS NOT NULL THEN
                IF NOT existing.same_user THEN
                    RAISE EXCEPTION 'idempotency key already used for another user'
                        USING ERRCODE = 'unique_violation', CONSTRAINT = 'jobs_idempotency_key_unique';
                END IF;
                RETURN existing.job_id;
            END IF;
            BEGIN
                INSERT INTO cognito_reset.jobs AS j
                    (user_pool_id, username, run_at, priority, client_metadata, idempotency_key, max_attempts, requested_by)
                VALUES (user_pool_id, username, coalesce(run_at, now()), coalesce(priority, 100), client_metadata,
                        idempotency_key, coalesce(max_attempts, 10), requested_by)
                ON CONFLICT DO NOTHING
                RETURNING j.id INTO job_id;
            EXCEPTION WHEN unique_violation THEN
                -- Another enqueue took the key meanwhile: the next round returns its job.
                CONTINUE;
            END;
        ELSE
            INSERT INTO cognito_reset.jobs AS j
                (user_pool_id, username, run_at, priority, client_metadata, max_attempts, requested_by)
            VALUES (user_pool_id, username, coalesce(run_at, now()), coalesce(priority, 100), client_metadata,
                    coalesce(max_attempts, 10), requested_by)
            ON CONFLICT DO NOTHING
            RETURNING j.id INTO job_id;
        END IF;
        IF job_id IS NOT NULL THEN
            RETURN job_id;
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

-- 10. queue_status on the new tables, with the one definition of runnable.
CREATE OR REPLACE VIEW cognito_reset.queue_status AS
SELECT
    active.pending, active.running, active.retrying,
    (SELECT count(*) FROM cognito_reset.jobs_finished WHERE state = 'succeeded') AS succeeded,
    (SELECT count(*) FROM cognito_reset.jobs_finished WHERE state = 'failed')    AS failed,
    (SELECT count(*) FROM cognito_reset.jobs_finished WHERE state = 'cancelled') AS cancelled,
    runnable.runnable_now,
    (SELECT count(*) FROM cognito_reset.queued_jobs WHERE run_at > now()) AS scheduled_later,
    runnable.oldest_runnable_age_seconds,
    recent.succeeded_last_minute, recent.succeeded_last_hour, recent.failed_last_minute, recent.failed_last_hour,
    (SELECT count(*) FROM cognito_reset.workers
      WHERE state <> 'stopped' AND heartbeat_at > now() - interval '1 minute') AS workers_alive,
    (SELECT coalesce(sum(cognito_reset.adaptive_rate(b, now())), 0) FROM cognito_reset.rate_limits b) AS effective_rate
FROM (
    SELECT count(*) FILTER (WHERE state = 'pending') AS pending,
           count(*) FILTER (WHERE state = 'running') AS running,
           count(*) FILTER (WHERE state = 'retrying') AS retrying
    FROM cognito_reset.jobs_active
) AS active, (
    SELECT count(*) AS runnable_now,
           extract(epoch FROM now() - min(run_at))::double precision AS oldest_runnable_age_seconds
    FROM cognito_reset.runnable_jobs
) AS runnable, (
    -- Only the partitions that can hold the last hour are read.
    SELECT count(*) FILTER (WHERE state = 'succeeded' AND finished_at > now() - interval '1 minute') AS succeeded_last_minute,
           count(*) FILTER (WHERE state = 'succeeded') AS succeeded_last_hour,
           count(*) FILTER (WHERE state = 'failed' AND finished_at > now() - interval '1 minute') AS failed_last_minute,
           count(*) FILTER (WHERE state = 'failed') AS failed_last_hour
    FROM cognito_reset.jobs_finished WHERE finished_at > now() - interval '1 hour'
) AS recent;

-- 11. One claim: the shared bucket's paced claim, and with p_key NULL (`--rate unlimited`) the
--     same claim without a bucket (an import's own rate still holds). Runnable comes from
--     runnable_jobs; the claimed rows stay in the hot partition.
CREATE OR REPLACE FUNCTION cognito_reset.claim_paced(
    p_worker text, p_want integer, p_lease double precision, p_key text, p_default_rate double precision,
    p_horizon double precision DEFAULT 0.5)
RETURNS TABLE (id bigint, user_pool_id text, username text, client_metadata jsonb, attempt integer,
               max_attempts integer, priority smallint, run_at timestamptz, claim_token bigint,
               call_in double precision, wait double precision, current_rate double precision,
               ceiling double precision)
-- Its statements are planned once per session: planning them for every claim cost more than
-- running them.
LANGUAGE plpgsql SET plan_cache_mode = force_generic_plan AS $$
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
    IF p_key IS NULL THEN
        -- --rate unlimited: no bucket; every job is called at once (an import's own rate still holds).
        t := clock_timestamp();
        r := 'Infinity';
        slot_base := t;
        batch := p_want;
        n := p_want;
    ELSE
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
    END IF;
    IF n > 0 THEN
        -- Imports with runnable jobs (a skip scan: one index probe per import), each allowed up to n
        -- jobs, or as many slots as its own rate has free.
        FOR imp IN
            WITH RECURSIVE active(import_id) AS (
                (SELECT j.import_id FROM cognito_reset.jobs_active j
                 WHERE j.state IN ('pending', 'retrying') AND j.import_id IS NOT NULL
                 ORDER BY j.import_id LIMIT 1)
                UNION ALL
                SELECT (SELECT j.import_id FROM cognito_reset.jobs_active j
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
            FROM cognito_reset.runnable_jobs j
            WHERE j.import_id IS NULL
            ORDER BY j.priority, j.run_at, j.id
            LIMIT n
            FOR UPDATE SKIP LOCKED
        ), imported AS (
            SELECT c.id, c.priority, c.run_at, a.import_id
            FROM unnest(import_ids, allowances) AS a(import_id, allowance)
            CROSS JOIN LATERAL (
                SELECT j.id, j.priority, j.run_at
                FROM cognito_reset.runnable_jobs j
                WHERE j.import_id = a.import_id
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
            UPDATE cognito_reset.jobs_active AS j
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

    IF p_key IS NOT NULL THEN
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
    END IF;
    RETURN QUERY SELECT NULL::bigint, NULL::text, NULL::text, NULL::jsonb, NULL::integer, NULL::integer,
        NULL::smallint, NULL::timestamptz, NULL::bigint, NULL::double precision, wait_s, r, b.rate;
END
$$;
-- 12. Retention: prune_history drops whole days of history (and of the audit) older than
--     p_before, and deletes row by row only in the day that straddles p_before and in the default
--     partitions. An audit day is dropped only when no job still kept is older than its end, so
--     a kept job never loses a call from its audit. Returns what went (or, with p_dry_run, would).
CREATE FUNCTION cognito_reset.prune_history(p_before timestamptz, p_dry_run boolean DEFAULT false,
    OUT jobs bigint, OUT attempts bigint)
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp SET lock_timeout = '5s' SET TimeZone = 'UTC'
AS $$
DECLARE
    part record;
    keep_from timestamptz;
    dropped_below timestamptz;
    whole_days oid[];
    n bigint;
    m bigint;
BEGIN
    jobs := 0;
    attempts := 0;
    -- What a day that is over holds never changes: its oldest creation time is read once.
    FOR part IN SELECT * FROM cognito_reset.history_partitions
                WHERE parent = 'jobs_finished' AND min_created_at IS NULL AND upper_bound <= now() LOOP
        EXECUTE format('SELECT coalesce(min(created_at), ''infinity'') FROM cognito_reset.%I', part.table_name) INTO keep_from;
        UPDATE cognito_reset.history_partitions SET min_created_at = keep_from WHERE table_name = part.table_name;
    END LOOP;
    -- The oldest creation time of any job that stays (a lower bound is enough: the audit is
    -- kept from there on). Days still open are read now.
    -- An active job never claimed has no call yet (a job scheduled for the year 2999 must not
    -- hold the audit back); a claim sets started_at and nothing clears it.
    keep_from := least(p_before, (SELECT min(created_at) FROM cognito_reset.jobs_active WHERE started_at IS NOT NULL));
    FOR part IN SELECT * FROM cognito_reset.history_partitions
                WHERE parent = 'jobs_finished' AND (upper_bound IS NULL OR upper_bound > p_before) LOOP
        IF part.min_created_at IS NULL THEN
            EXECUTE format('SELECT min(created_at) FROM cognito_reset.%I', part.table_name) INTO part.min_created_at;
        END IF;
        keep_from := least(keep_from, part.min_created_at);
    END LOOP;

    -- Audit days wholly before keep_from are dropped below; calls of pruned jobs in later days
    -- go row by row.
    -- (An hour's slack: a call's time is its worker's clock, a job's creation the database's.)
    dropped_below := coalesce((SELECT max(upper_bound) FROM cognito_reset.history_partitions
                               WHERE parent = 'attempts' AND upper_bound <= keep_from - interval '1 hour'), '-infinity');

    -- Whole days of history (their rows are not counted again below, in a dry run).
    whole_days := coalesce((SELECT array_agg(('cognito_reset.' || quote_ident(table_name))::regclass::oid)
                            FROM cognito_reset.history_partitions
                            WHERE parent = 'jobs_finished' AND upper_bound <= p_before), '{}');
    FOR part IN SELECT * FROM cognito_reset.history_partitions
                WHERE parent = 'jobs_finished' AND upper_bound <= p_before ORDER BY upper_bound LOOP
        EXECUTE format('SELECT count(*) FROM cognito_reset.%I', part.table_name) INTO n;
        -- Calls of these jobs in audit days that stay (kept alive by an older job still kept).
        -- A call ends before its job does (an hour's slack for a worker's clock): only audit days
        -- between dropped_below and the day's end can hold them. A call outside that (a clock far
        -- off) is dropped with its audit day later, once no kept job is older.
        m := 0;
        IF part.upper_bound + interval '1 hour' > dropped_below THEN
            EXECUTE format('SELECT count(*) FROM cognito_reset.attempts a WHERE a.finished_at >= %L AND a.finished_at < %L '
                           'AND a.job_id IN (SELECT id FROM cognito_reset.%I)', dropped_below, part.upper_bound + interval '1 hour', part.table_name) INTO m;
        END IF;
        jobs := jobs + n;
        attempts := attempts + m;
        IF NOT p_dry_run THEN
            IF m > 0 THEN
                EXECUTE format('DELETE FROM cognito_reset.attempts a WHERE a.finished_at >= %L AND a.finished_at < %L '
                               'AND a.job_id IN (SELECT id FROM cognito_reset.%I)', dropped_below, part.upper_bound + interval '1 hour', part.table_name);
            END IF;
            EXECUTE format('DELETE FROM cognito_reset.idempotency_keys k WHERE k.job_id IN '
                           '(SELECT id FROM cognito_reset.%I WHERE idempotency_key IS NOT NULL)', part.table_name);
        END IF;
    END LOOP;

    -- The day that straddles p_before, and the default partition: row by row. SKIP LOCKED
    -- leaves a row an operator is retrying right now for the next run.
    IF p_dry_run THEN
        SELECT count(*) INTO n FROM cognito_reset.jobs_finished j
        WHERE j.finished_at < p_before AND j.tableoid <> ALL (whole_days);
        SELECT count(*) INTO m FROM cognito_reset.attempts a
        WHERE a.finished_at >= dropped_below AND a.finished_at < p_before + interval '1 hour'
          AND a.job_id IN (SELECT j.id FROM cognito_reset.jobs_finished j
                           WHERE j.finished_at < p_before AND j.tableoid <> ALL (whole_days));
    ELSE
        WITH doomed AS (
            SELECT j.id FROM cognito_reset.jobs_finished j
            WHERE j.finished_at < p_before AND j.tableoid <> ALL (whole_days)
            FOR UPDATE SKIP LOCKED
        ), audit AS (
            DELETE FROM cognito_reset.attempts a USING doomed d
            WHERE a.job_id = d.id AND a.finished_at >= dropped_below AND a.finished_at < p_before + interval '1 hour'
            RETURNING 1
        ), keys AS (
            DELETE FROM cognito_reset.idempotency_keys k USING doomed d WHERE k.job_id = d.id
        ), gone AS (
            DELETE FROM cognito_reset.jobs_finished j USING doomed d WHERE j.id = d.id RETURNING 1
        )
        SELECT (SELECT count(*) FROM gone), (SELECT count(*) FROM audit) INTO n, m;
    END IF;
    jobs := jobs + n;
    attempts := attempts + m;

    -- Audit rows in the default partition older than every job kept (their jobs are gone).
    IF p_dry_run THEN
        SELECT count(*) INTO m FROM cognito_reset.attempts_default a
        WHERE a.finished_at < keep_from - interval '1 hour'
          AND NOT (a.finished_at >= dropped_below AND a.job_id IN (SELECT j.id FROM cognito_reset.jobs_finished j
                   WHERE j.finished_at < p_before));
    ELSE
        WITH gone AS (DELETE FROM cognito_reset.attempts_default a WHERE a.finished_at < keep_from - interval '1 hour' RETURNING 1)
        SELECT count(*) INTO m FROM gone;
    END IF;
    attempts := attempts + m;

    -- Whole days of the audit that no kept job reaches back to.
    FOR part IN SELECT * FROM cognito_reset.history_partitions
                WHERE parent = 'attempts' AND upper_bound <= dropped_below ORDER BY upper_bound LOOP
        EXECUTE format('SELECT count(*) FROM cognito_reset.%I', part.table_name) INTO m;
        attempts := attempts + m;
    END LOOP;

    -- The drops, last: dropping a partition locks its parent until this transaction ends, so
    -- they come after every row-by-row step, and in the order outcomes take those locks (the
    -- audit, then history), so that an outcome and a prune never wait for each other in a circle.
    IF NOT p_dry_run THEN
        LOCK TABLE cognito_reset.attempts, cognito_reset.jobs_finished IN ACCESS EXCLUSIVE MODE;
        FOR part IN SELECT * FROM cognito_reset.history_partitions
                    WHERE (parent = 'jobs_finished' AND upper_bound <= p_before)
                       OR (parent = 'attempts' AND upper_bound <= dropped_below) LOOP
            EXECUTE format('DROP TABLE cognito_reset.%I', part.table_name);
            DELETE FROM cognito_reset.history_partitions WHERE table_name = part.table_name;
        END LOOP;
    END IF;
END
$$;

-- 13. Row security and grants on the new tables, as on the old one (README, roles).
ALTER TABLE cognito_reset.jobs ENABLE ROW LEVEL SECURITY;
CREATE POLICY jobs_enqueuer_reads_own ON cognito_reset.jobs FOR SELECT TO cognito_reset_enqueuer
    USING (enqueued_by = current_user);
-- A foreign key check ignores row security: this policy is what keeps an enqueuer's jobs out of
-- another's import (and its rate).
CREATE POLICY jobs_enqueuer_inserts_own ON cognito_reset.jobs FOR INSERT TO cognito_reset_enqueuer
    WITH CHECK (enqueued_by = current_user
                AND (import_id IS NULL
                     OR EXISTS (SELECT FROM cognito_reset.imports i
                                WHERE i.id = jobs.import_id AND i.created_by = current_user)));
CREATE POLICY jobs_worker_all ON cognito_reset.jobs FOR ALL TO cognito_reset_worker
    USING (true) WITH CHECK (true);

REVOKE ALL ON cognito_reset.jobs, cognito_reset.jobs_active, cognito_reset.jobs_finished, cognito_reset.attempts,
    cognito_reset.idempotency_keys, cognito_reset.history_partitions, cognito_reset.history_bound,
    cognito_reset.migration_locks, cognito_reset.queued_jobs, cognito_reset.runnable_jobs FROM PUBLIC;
REVOKE EXECUTE ON FUNCTION cognito_reset.ensure_history_partitions(integer),
    cognito_reset.prune_history(timestamptz, boolean), cognito_reset.idempotency_key_taken() FROM PUBLIC;
REVOKE ALL ON SEQUENCE cognito_reset.job_ids, cognito_reset.attempt_ids FROM PUBLIC;

GRANT SELECT ON cognito_reset.jobs TO cognito_reset_enqueuer;
GRANT INSERT (user_pool_id, username, client_metadata, priority, max_attempts, run_at,
              idempotency_key, requested_by, import_id) ON cognito_reset.jobs TO cognito_reset_enqueuer;
GRANT USAGE ON SEQUENCE cognito_reset.job_ids TO cognito_reset_enqueuer, cognito_reset_worker;
GRANT USAGE ON SEQUENCE cognito_reset.attempt_ids TO cognito_reset_worker;

-- The worker reads and writes the hot partition directly (claims, leases, rescues stay in it)
-- and goes through `jobs` when a job leaves it.
GRANT SELECT, UPDATE, DELETE ON cognito_reset.jobs, cognito_reset.jobs_active TO cognito_reset_worker;
GRANT SELECT ON cognito_reset.jobs_finished, cognito_reset.history_partitions, cognito_reset.migration_locks
    TO cognito_reset_worker;
-- UPDATE: the claim locks the rows it reads through them (FOR UPDATE).
GRANT SELECT, UPDATE ON cognito_reset.queued_jobs, cognito_reset.runnable_jobs TO cognito_reset_worker;
GRANT SELECT, INSERT ON cognito_reset.attempts TO cognito_reset_worker;
GRANT EXECUTE ON FUNCTION cognito_reset.ensure_history_partitions(integer),
    cognito_reset.prune_history(timestamptz, boolean) TO cognito_reset_worker;
GRANT SELECT ON cognito_reset.migration_locks TO cognito_reset_monitor;

UPDATE cognito_reset.migration_locks SET released_at = clock_timestamp() WHERE version = '0008';
