-- 0010's check, validated outside its exclusive lock (SHARE UPDATE EXCLUSIVE: workers and
-- enqueuers carry on while the active rows are read).
ALTER TABLE cognito_reset.jobs_active VALIDATE CONSTRAINT jobs_username_characters;
