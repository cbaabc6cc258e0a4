-- Each worker records how often it heartbeats, so that others can tell a worker that stopped
-- heartbeating (killed, frozen, cut off) from a live one: `worker --drain` waits for the leases
-- of the first and rescues their jobs, and leaves the jobs of live workers alone. NULL for
-- workers of older versions (then a default is assumed; see WorkerSQL.orphanedLeaseWait).
ALTER TABLE cognito_reset.workers
    ADD COLUMN heartbeat_interval_ms integer
        CONSTRAINT workers_heartbeat_interval_positive CHECK (heartbeat_interval_ms > 0);
