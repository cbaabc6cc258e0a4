-- The daemon reports ready (systemd READY=1) only once the schema is at the version its binary
-- expects, which it checks in the migrations table: the worker and monitor roles may read it.
GRANT SELECT ON cognito_reset.schema_migrations TO cognito_reset_worker, cognito_reset_monitor;
