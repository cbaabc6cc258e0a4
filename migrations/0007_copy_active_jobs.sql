-- migrate:no-transaction
-- Fills the hot partition-to-be (0006) with the active jobs that exist, 5,000 per transaction,
-- while workers and other systems carry on; 0006's trigger keeps it current meanwhile.
CALL cognito_reset.copy_active_jobs(5000);
