-- The hot partition's import reference was added NOT VALID by 0008 (the rows had passed it in
-- the old table), and its input checks came from the old table, where 0005 added them NOT VALID,
-- to keep 0008's exclusive lock short. Validating reads every active row but takes only a SHARE
-- UPDATE EXCLUSIVE lock: workers carry on. (0005 put the active rows right, so they pass.)
ALTER TABLE cognito_reset.jobs_active VALIDATE CONSTRAINT jobs_client_metadata_size;
ALTER TABLE cognito_reset.jobs_active VALIDATE CONSTRAINT jobs_run_at_finite;
ALTER TABLE cognito_reset.jobs_active VALIDATE CONSTRAINT jobs_run_at_range;
ALTER TABLE cognito_reset.jobs_active VALIDATE CONSTRAINT jobs_username_characters;
ALTER TABLE cognito_reset.jobs_active VALIDATE CONSTRAINT jobs_username_utf16_length;
ALTER TABLE cognito_reset.jobs_active VALIDATE CONSTRAINT jobs_import_id_fkey;
