-- The monitor role (dashboards, on-call) reads the audit for throughput, latency, failures by
-- code and rescues over time (monitoring/grafana/cognito-reset-sql.json). Column by column:
-- every column but error_message, the one free text a remote service wrote, so the role still
-- sees no usernames and nothing another system chose to put in a message.
GRANT SELECT (id, job_id, attempt, worker_id, started_at, finished_at, outcome, error_code, request_id, latency_ms)
    ON cognito_reset.attempts TO cognito_reset_monitor;
