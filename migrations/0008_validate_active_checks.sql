-- The input checks and the import reference of the hot partition were added NOT VALID by 0007
-- (the rows it moved had passed them already), to keep its exclusive lock short. Validating
-- reads every active row but takes only a SHARE UPDATE EXCLUSIVE lock: workers carry on.
ALTER TABLE cognito_reset.jobs_active VALIDATE CONSTRAINT jobs_client_metadata_size;
ALTER TABLE cognito_reset.jobs_active VALIDATE CONSTRAINT jobs_run_at_finite;
ALTER TABLE cognito_reset.jobs_active VALIDATE CONSTRAINT jobs_run_at_range;
ALTER TABLE cognito_reset.jobs_active VALIDATE CONSTRAINT jobs_username_characters;
ALTER TABLE cognito_reset.jobs_active VALIDATE CONSTRAINT jobs_username_utf16_length;
ALTER TABLE cognito_reset.jobs_active VALIDATE CONSTRAINT jobs_import_id_fkey;
