-- name: current_position :val
-- serves: chatsvc serve: the answer to every write with a replica configured (Chatsvc-Position), and measuring the replica's lag
-- On the primary, after writes have committed: its WAL position now, which
-- is past every commit that had completed when it ran. Answered to writers
-- as Chatsvc-Position (chatsvc/replica.py), once for all the writes that
-- finished while the one before ran.
-- params: none
-- returns: the position (pg_lsn as text, e.g. 0/16B3748)
-- uses: nothing
SELECT pg_current_wal_lsn()::text;
