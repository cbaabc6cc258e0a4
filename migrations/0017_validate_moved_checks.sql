-- 0016's checks on the hot partition, validated outside its exclusive lock (SHARE UPDATE
-- EXCLUSIVE: workers and enqueuers carry on while the active rows are read).
DO $validate$
DECLARE
    c record;
BEGIN
    FOR c IN SELECT conname FROM pg_constraint
             WHERE conrelid = 'cognito_reset.jobs_active'::regclass AND contype = 'c' AND NOT convalidated
    LOOP
        EXECUTE format('ALTER TABLE cognito_reset.jobs_active VALIDATE CONSTRAINT %I', c.conname);
    END LOOP;
END
$validate$;
