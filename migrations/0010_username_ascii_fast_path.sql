-- Most usernames are printable ASCII (U+0021 to U+007E), and every such character is a letter,
-- number, punctuation mark or symbol, which Cognito's pattern allows. The check now tries that
-- short pattern first and calls username_characters_allowed() (PL/pgSQL, a 10 kB class) only
-- for the rest: a million-row COPY into `jobs` spent about a tenth of its time in that call.
-- Both forms accept exactly the same usernames, so the rows already there pass; the check is
-- swapped NOT VALID to keep the exclusive lock to a catalogue change, and 0011 validates it.
ALTER TABLE cognito_reset.jobs_active
    DROP CONSTRAINT jobs_username_characters,
    ADD CONSTRAINT jobs_username_characters
        CHECK (username OPERATOR(pg_catalog.~) '^[!-~]+$' OR cognito_reset.username_characters_allowed(username)) NOT VALID;
