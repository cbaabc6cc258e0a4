-- cognito-reset schema, version 1.
--
-- This schema is a public API: other systems insert into cognito_reset.jobs (or call
-- cognito_reset.enqueue_reset) in their own transactions. Change it only through new migration
-- files; never edit this one after release (its checksum is recorded when applied).
--
-- The database itself rejects invalid rows with named constraints, so a plain INSERT from another
-- system cannot put a malformed job in the queue. (The Swift code checks the same rules first, and
-- Cognito's exact username pattern and UTF-16 length on top.)

CREATE SCHEMA IF NOT EXISTS cognito_reset;
REVOKE ALL ON SCHEMA cognito_reset FROM PUBLIC;

-- Roles (cluster-wide, so created only if missing; NOLOGIN: grant them to login roles).
DO $roles$
DECLARE
    role_name text;
BEGIN
    FOREACH role_name IN ARRAY ARRAY['cognito_reset_enqueuer', 'cognito_reset_worker', 'cognito_reset_monitor']
    LOOP
        IF NOT EXISTS (SELECT FROM pg_catalog.pg_roles WHERE rolname = role_name) THEN
            BEGIN
                EXECUTE format('CREATE ROLE %I NOLOGIN', role_name);
            EXCEPTION WHEN duplicate_object OR unique_violation THEN
                NULL;  -- created concurrently by a migration of another database on this cluster
            END;
        END IF;
    END LOOP;
END
$roles$;

-- One row per CSV import (issue: bulk resets). Referenced by jobs.import_id.
CREATE TABLE cognito_reset.imports (
    id              bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    file_name       text NOT NULL CONSTRAINT imports_file_name_length CHECK (char_length(file_name) BETWEEN 1 AND 4096),
    sha256          text NOT NULL CONSTRAINT imports_sha256_format CHECK (sha256 ~ '^[0-9a-f]{64}$'),
    user_pool_id    text,
    rows_read       bigint NOT NULL DEFAULT 0 CONSTRAINT imports_rows_read_nonnegative CHECK (rows_read >= 0),
    rows_accepted   bigint NOT NULL DEFAULT 0 CONSTRAINT imports_rows_accepted_nonnegative CHECK (rows_accepted >= 0),
    rows_duplicate  bigint NOT NULL DEFAULT 0 CONSTRAINT imports_rows_duplicate_nonnegative CHECK (rows_duplicate >= 0),
    rows_rejected   bigint NOT NULL DEFAULT 0 CONSTRAINT imports_rows_rejected_nonnegative CHECK (rows_rejected >= 0),
    run_at          timestamptz,
    priority        smallint,
    max_attempts    integer,
    requested_by    text CONSTRAINT imports_requested_by_length CHECK (char_length(requested_by) <= 255),
    created_at      timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT imports_rows_add_up CHECK (rows_accepted + rows_duplicate + rows_rejected = rows_read)
);
CREATE INDEX imports_sha256 ON cognito_reset.imports (sha256);

-- Rejected lines of an import, with their line number and reason.
CREATE TABLE cognito_reset.import_rejections (
    import_id   bigint NOT NULL REFERENCES cognito_reset.imports (id) ON DELETE CASCADE,
    line_number bigint NOT NULL CONSTRAINT import_rejections_line_positive CHECK (line_number >= 1),
    reason      text NOT NULL CONSTRAINT import_rejections_reason_length CHECK (char_length(reason) BETWEEN 1 AND 1000),
    PRIMARY KEY (import_id, line_number)
);

-- One row per requested password reset.
CREATE TABLE cognito_reset.jobs (
    id                 bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    -- Cognito's UserPoolId: length 1-55, pattern [\w-]+_[0-9a-zA-Z]+ (region, underscore, id).
    user_pool_id       text NOT NULL
        CONSTRAINT jobs_user_pool_id_format
        CHECK (char_length(user_pool_id) BETWEEN 1 AND 55 AND user_pool_id ~ '^[A-Za-z0-9_-]+_[0-9A-Za-z]+$'),
    -- Cognito's Username: 1-128 characters, no whitespace or control characters.
    username           text NOT NULL
        CONSTRAINT jobs_username_length CHECK (char_length(username) BETWEEN 1 AND 128)
        CONSTRAINT jobs_username_characters CHECK (username !~ '[[:space:][:cntrl:]]'),
    -- ClientMetadata: an object of string values, passed to the pool's Lambda triggers.
    client_metadata    jsonb
        CONSTRAINT jobs_client_metadata_string_map
        CHECK (client_metadata IS NULL OR (jsonb_typeof(client_metadata) = 'object'
               AND NOT jsonb_path_exists(client_metadata, 'strict $.* ? (@.type() != "string")'))),
    state              text NOT NULL DEFAULT 'pending'
        CONSTRAINT jobs_state_known
        CHECK (state IN ('pending', 'running', 'retrying', 'succeeded', 'failed', 'cancelled')),
    -- Lower runs first (0 is most urgent). Single requests default to 100, bulk imports run later.
    priority           smallint NOT NULL DEFAULT 100
        CONSTRAINT jobs_priority_range CHECK (priority BETWEEN 0 AND 1000),
    -- Calls made so far (claims); throttled calls give theirs back.
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
    import_id          bigint REFERENCES cognito_reset.imports (id),
    idempotency_key    text
        CONSTRAINT jobs_idempotency_key_length CHECK (char_length(idempotency_key) BETWEEN 1 AND 255)
        CONSTRAINT jobs_idempotency_key_unique UNIQUE,
    -- Who asked, free text for the audit (e.g. "helpdesk:T-42"): defaults to the inserting role.
    requested_by       text DEFAULT current_user
        CONSTRAINT jobs_requested_by_length CHECK (char_length(requested_by) <= 255),
    -- The database role that inserted the row; enqueuers see only their own jobs (row security).
    enqueued_by        text NOT NULL DEFAULT current_user
        CONSTRAINT jobs_enqueued_by_length CHECK (char_length(enqueued_by) BETWEEN 1 AND 255),

    CONSTRAINT jobs_attempt_within_max CHECK (attempt <= max_attempts),
    -- Finished (and only finished) jobs have finished_at.
    CONSTRAINT jobs_finished_at_iff_finished
        CHECK ((state IN ('succeeded', 'failed', 'cancelled')) = (finished_at IS NOT NULL)),
    -- A running job is held by a worker under a lease; no other job is.
    CONSTRAINT jobs_lease_iff_running
        CHECK ((state = 'running') = (locked_by IS NOT NULL AND lease_expires_at IS NOT NULL)),
    CONSTRAINT jobs_locked_by_only_when_running CHECK (state = 'running' OR locked_by IS NULL),
    CONSTRAINT jobs_running_has_started CHECK (state <> 'running' OR started_at IS NOT NULL),
    CONSTRAINT jobs_succeeded_was_attempted CHECK (state <> 'succeeded' OR attempt >= 1)
);

-- Claim order among runnable jobs; finished jobs leave this index.
CREATE INDEX jobs_claimable ON cognito_reset.jobs (priority, run_at, id)
    WHERE state IN ('pending', 'retrying');
-- At most one active job per user: a second request returns the first (no second email).
CREATE UNIQUE INDEX jobs_one_active_per_user ON cognito_reset.jobs (user_pool_id, username)
    WHERE state IN ('pending', 'running', 'retrying');
-- The earliest future run_at, for an idle worker's wake-up timer.
CREATE INDEX jobs_waiting_run_at ON cognito_reset.jobs (run_at) WHERE state IN ('pending', 'retrying');
-- Lease renewal and rescue.
CREATE INDEX jobs_running_leases ON cognito_reset.jobs (lease_expires_at) WHERE state = 'running';
CREATE INDEX jobs_running_by_worker ON cognito_reset.jobs (locked_by) WHERE state = 'running';
-- Listing by state, lookups by user, retention and per-import operations.
CREATE INDEX jobs_state_id ON cognito_reset.jobs (state, id);
CREATE INDEX jobs_user ON cognito_reset.jobs (user_pool_id, username);
CREATE INDEX jobs_finished_at ON cognito_reset.jobs (finished_at) WHERE finished_at IS NOT NULL;
CREATE INDEX jobs_import_id ON cognito_reset.jobs (import_id) WHERE import_id IS NOT NULL;

-- Append-only audit of every Cognito call (and of every lease that expired mid-call).
CREATE TABLE cognito_reset.attempts (
    id            bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    job_id        bigint NOT NULL REFERENCES cognito_reset.jobs (id) ON DELETE CASCADE,
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
);
CREATE INDEX attempts_job_id ON cognito_reset.attempts (job_id, attempt);
CREATE INDEX attempts_finished_at ON cognito_reset.attempts (finished_at);

CREATE FUNCTION cognito_reset.attempts_are_append_only() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'cognito_reset.attempts is append-only: rows cannot be updated'
        USING ERRCODE = 'insufficient_privilege';
END
$$;
CREATE TRIGGER attempts_append_only BEFORE UPDATE ON cognito_reset.attempts
    FOR EACH ROW EXECUTE FUNCTION cognito_reset.attempts_are_append_only();

-- One row per worker process: the operators' status table.
CREATE TABLE cognito_reset.workers (
    id              text PRIMARY KEY CONSTRAINT workers_id_length CHECK (char_length(id) BETWEEN 1 AND 200),
    host            text NOT NULL CONSTRAINT workers_host_length CHECK (char_length(host) BETWEEN 1 AND 255),
    pid             integer NOT NULL CONSTRAINT workers_pid_positive CHECK (pid > 0),
    version         text NOT NULL CONSTRAINT workers_version_length CHECK (char_length(version) BETWEEN 1 AND 100),
    started_at      timestamptz NOT NULL DEFAULT now(),
    heartbeat_at    timestamptz NOT NULL DEFAULT now(),
    stopped_at      timestamptz,
    state           text NOT NULL DEFAULT 'running'
        CONSTRAINT workers_state_known CHECK (state IN ('running', 'draining', 'stopped')),
    concurrency     integer CONSTRAINT workers_concurrency_positive CHECK (concurrency >= 1),
    in_flight       integer NOT NULL DEFAULT 0 CONSTRAINT workers_in_flight_nonnegative CHECK (in_flight >= 0),
    jobs_succeeded  bigint NOT NULL DEFAULT 0 CONSTRAINT workers_jobs_succeeded_nonnegative CHECK (jobs_succeeded >= 0),
    jobs_failed     bigint NOT NULL DEFAULT 0 CONSTRAINT workers_jobs_failed_nonnegative CHECK (jobs_failed >= 0),
    jobs_retried    bigint NOT NULL DEFAULT 0 CONSTRAINT workers_jobs_retried_nonnegative CHECK (jobs_retried >= 0),
    CONSTRAINT workers_stopped_at_iff_stopped CHECK ((state = 'stopped') = (stopped_at IS NOT NULL))
);

-- Shared token buckets, one per account/region key: every worker on every host draws from the
-- same row, so the whole fleet stays under Cognito's quota.
CREATE TABLE cognito_reset.rate_limits (
    key           text PRIMARY KEY CONSTRAINT rate_limits_key_length CHECK (char_length(key) BETWEEN 1 AND 200),
    -- Ceiling in requests per second; 0 pauses every worker using this bucket.
    rate          double precision NOT NULL DEFAULT 25
        CONSTRAINT rate_limits_rate_range CHECK (rate >= 0 AND rate <= 10000),
    burst         double precision NOT NULL DEFAULT 25
        CONSTRAINT rate_limits_burst_range CHECK (burst >= 1 AND burst <= 10000),
    tokens        double precision NOT NULL DEFAULT 0
        CONSTRAINT rate_limits_tokens_range CHECK (tokens >= 0 AND tokens <= burst),
    -- The adaptive rate actually used: lowered on throttling, raised back toward `rate`.
    current_rate  double precision NOT NULL DEFAULT 25
        CONSTRAINT rate_limits_current_rate_range CHECK (current_rate >= 0 AND current_rate <= rate),
    updated_at    timestamptz NOT NULL DEFAULT now()
);

-- Wake idle workers when jobs are inserted: one NOTIFY per statement (not per row), delivered at
-- commit; identical notifications in one transaction are folded into one by PostgreSQL.
CREATE FUNCTION cognito_reset.notify_jobs_inserted() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_notify('cognito_reset_jobs', '');
    RETURN NULL;
END
$$;
CREATE TRIGGER jobs_notify_insert AFTER INSERT ON cognito_reset.jobs
    FOR EACH STATEMENT EXECUTE FUNCTION cognito_reset.notify_jobs_inserted();

-- Lookups enqueue_reset needs across all enqueuers' jobs, which row security hides from each of
-- them: they run as the schema owner and reveal only a job id (and the key's user).
CREATE FUNCTION cognito_reset.active_job_id(user_pool_id text, username text) RETURNS bigint
LANGUAGE sql STABLE SECURITY DEFINER SET search_path = pg_catalog, pg_temp
AS $$
    SELECT j.id FROM cognito_reset.jobs j
    WHERE j.user_pool_id = $1 AND j.username = $2 AND j.state IN ('pending', 'running', 'retrying')
$$;

CREATE FUNCTION cognito_reset.idempotency_key_job(idempotency_key text,
    OUT job_id bigint, OUT user_pool_id text, OUT username text)
LANGUAGE sql STABLE SECURITY DEFINER SET search_path = pg_catalog, pg_temp
AS $$
    SELECT j.id, j.user_pool_id, j.username FROM cognito_reset.jobs j WHERE j.idempotency_key = $1
$$;

-- Enqueue one reset. Returns the new job's id, or the id of the job that already exists for the
-- same idempotency key or the same user's active (pending/running/retrying) job, whoever
-- enqueued it: a user gets one reset email however many systems ask at once.
CREATE FUNCTION cognito_reset.enqueue_reset(
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
            SELECT * INTO existing FROM cognito_reset.idempotency_key_job(idempotency_key);
            IF existing.job_id IS NOT NULL THEN
                IF existing.user_pool_id <> user_pool_id OR existing.username <> username THEN
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

-- One row summarising the queue for operators and dashboards.
CREATE VIEW cognito_reset.queue_status AS
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
    (SELECT coalesce(sum(current_rate), 0) FROM cognito_reset.rate_limits)   AS effective_rate
FROM (
    SELECT count(*) AS runnable_now,
           extract(epoch FROM now() - min(run_at))::double precision AS oldest_runnable_age_seconds
    FROM cognito_reset.jobs
    WHERE state IN ('pending', 'retrying') AND run_at <= now()
) AS runnable;

-- Row security on jobs: each enqueuer (each login role in cognito_reset_enqueuer) reads only the
-- jobs it inserted and cannot insert in another's name; workers see and work every job. The
-- schema owner and the views it owns are not subject to these policies.
ALTER TABLE cognito_reset.jobs ENABLE ROW LEVEL SECURITY;
CREATE POLICY jobs_enqueuer_reads_own ON cognito_reset.jobs FOR SELECT TO cognito_reset_enqueuer
    USING (enqueued_by = current_user);
CREATE POLICY jobs_enqueuer_inserts_own ON cognito_reset.jobs FOR INSERT TO cognito_reset_enqueuer
    WITH CHECK (enqueued_by = current_user);
CREATE POLICY jobs_worker_all ON cognito_reset.jobs FOR ALL TO cognito_reset_worker
    USING (true) WITH CHECK (true);

-- Least-privilege grants. Functions are executable by PUBLIC unless revoked.
REVOKE ALL ON ALL TABLES IN SCHEMA cognito_reset FROM PUBLIC;
REVOKE EXECUTE ON ALL FUNCTIONS IN SCHEMA cognito_reset FROM PUBLIC;

-- Enqueuer: other systems and operators asking for resets. Inserts only the request's columns
-- (never state, attempt, lease or enqueued_by), reads its own jobs to follow them (row security
-- above), and records CSV imports.
GRANT USAGE ON SCHEMA cognito_reset TO cognito_reset_enqueuer;
GRANT SELECT ON cognito_reset.jobs, cognito_reset.queue_status, cognito_reset.imports,
    cognito_reset.import_rejections TO cognito_reset_enqueuer;
GRANT INSERT (user_pool_id, username, client_metadata, priority, max_attempts, run_at,
              idempotency_key, requested_by, import_id) ON cognito_reset.jobs TO cognito_reset_enqueuer;
GRANT INSERT ON cognito_reset.imports, cognito_reset.import_rejections TO cognito_reset_enqueuer;
GRANT UPDATE (rows_read, rows_accepted, rows_duplicate, rows_rejected) ON cognito_reset.imports
    TO cognito_reset_enqueuer;
GRANT EXECUTE ON FUNCTION cognito_reset.enqueue_reset(text, text, timestamptz, integer, jsonb, text, integer, text),
    cognito_reset.active_job_id(text, text), cognito_reset.idempotency_key_job(text)
    TO cognito_reset_enqueuer;

-- Worker: claims and records jobs, appends to the audit, keeps its status row and the shared
-- rate buckets, and prunes finished rows (with their audit rows, after the retention period).
-- No DDL, no UPDATE of the audit.
GRANT USAGE ON SCHEMA cognito_reset TO cognito_reset_worker;
GRANT SELECT, UPDATE, DELETE ON cognito_reset.jobs TO cognito_reset_worker;
GRANT SELECT, INSERT, DELETE ON cognito_reset.attempts TO cognito_reset_worker;
GRANT SELECT, INSERT, UPDATE, DELETE ON cognito_reset.workers TO cognito_reset_worker;
GRANT SELECT, INSERT, UPDATE ON cognito_reset.rate_limits TO cognito_reset_worker;
GRANT SELECT, DELETE ON cognito_reset.imports, cognito_reset.import_rejections TO cognito_reset_worker;
GRANT SELECT ON cognito_reset.queue_status TO cognito_reset_worker;

-- Monitor: dashboards and on-call. The summary view, workers and rate buckets; no usernames.
GRANT USAGE ON SCHEMA cognito_reset TO cognito_reset_monitor;
GRANT SELECT ON cognito_reset.queue_status, cognito_reset.workers, cognito_reset.rate_limits
    TO cognito_reset_monitor;
