-- name: replayed :val
-- serves: chatsvc serve: every read a replica may serve, when the caller sent Chatsvc-Position
-- On the replica: whether it has replayed the primary's WAL up to a
-- position a client sent back (Chatsvc-Position), so that a read there sees
-- every write answered with it. A server that is not a standby is current.
-- params: $1 position text (pg_lsn)
-- returns: true when replayed that far
-- uses: nothing
SELECT coalesce(pg_last_wal_replay_lsn(), pg_current_wal_insert_lsn()) >= $1::text::pg_lsn;
