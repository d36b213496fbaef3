-- name: read_session_settings :many
-- serves: chatsvc serve: the first connection of each connection path (pool, background jobs, events listener)
-- The settings the session runs with, read back after connecting: a pooler
-- between the service and PostgreSQL may drop the ones the service sent
-- (PgBouncer refuses statement_timeout and plan_cache_mode as startup parameters).
-- params: $1 names text[] (lower case)
-- returns: name (lower case) and setting, in the setting's base unit (statement_timeout in ms), of each
-- uses: pg_settings (a view of this session's settings)
SELECT lower(name) AS name, setting
FROM pg_settings
WHERE lower(name) = ANY($1::text[]);
