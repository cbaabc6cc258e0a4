-- The admin role, for `cognito-reset pool set-role` (0013 gives it its grants).
--
-- Roles are cluster-wide: migrations of other databases on the same cluster may create it at the
-- same moment. It is created in a transaction of its own, so that 0013's grants start in a new
-- transaction that sees it, whoever created it (granting to it in the transaction that caught
-- the concurrent creation failed once in the test suite with "role does not exist").
--
-- It manages pool roles (and nothing else yet). Operators grant it to the people or automation
-- that run `cognito-reset pool set-role`.
DO $$
BEGIN
    IF NOT EXISTS (SELECT FROM pg_catalog.pg_roles WHERE rolname = 'cognito_reset_admin') THEN
        BEGIN
            CREATE ROLE cognito_reset_admin NOLOGIN;
        EXCEPTION WHEN duplicate_object OR unique_violation THEN
            NULL;  -- created concurrently by a migration of another database on this cluster
        END;
    END IF;
END
$$;

