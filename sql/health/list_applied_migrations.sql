-- name: list_applied_migrations :many
-- serves: GET /readyz
-- The migrations applied to this database, for GET /readyz: the service is
-- ready only when every migration it ships is among them. yoyo keeps this
-- table (migrations/ are applied by chatsvc migrate or serve).
-- params: none
-- returns: migration_id text, one row per applied migration
-- uses: _yoyo_migration (a handful of rows)
SELECT migration_id
FROM _yoyo_migration;
