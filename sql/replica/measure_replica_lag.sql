-- name: measure_replica_lag :one
-- serves: chatsvc serve: the replica's lag, for /metrics
-- On the replica: how far behind the primary's position (read there just
-- before) it is, in WAL bytes and in seconds (since the last transaction it
-- replayed; 0 when it has replayed everything).
-- params: $1 primary_position text (pg_lsn)
-- returns: lag_bytes double precision, lag_seconds double precision
-- uses: nothing
SELECT
    greatest(pg_wal_lsn_diff($1::text::pg_lsn, coalesce(pg_last_wal_replay_lsn(), $1::text::pg_lsn)), 0)::float8
        AS lag_bytes,
    CASE
        WHEN coalesce(pg_last_wal_replay_lsn() >= $1::text::pg_lsn, true) THEN 0
        ELSE coalesce(extract(epoch FROM now() - pg_last_xact_replay_timestamp()), 0)
    END::float8 AS lag_seconds;
