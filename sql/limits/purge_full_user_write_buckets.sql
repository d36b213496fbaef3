-- name: purge_full_user_write_buckets :one
-- serves: chatsvc serve, hourly
-- Deletes the full buckets (full_at has passed: no row says the same) among
-- the next $2 users after $1, in user id order; the caller goes on from
-- last_user_id until it is null. Walking the primary key keeps each batch's
-- cost to its own $2 entries, however many rows were deleted before it (there
-- is no index on full_at: migrations/0006). A charge running meanwhile holds
-- its row for one statement; the delete waits for it and then sees the bucket
-- it left, not full any more, and keeps it.
-- params: $1 after text (the previous batch's last_user_id; '' at first), $2 batch_size bigint
-- returns: last_user_id text (the last user examined; null when none follows $1), purged bigint
-- uses: user_write_buckets_pkey: a range scan of at most $2 entries, then an index probe for each of them (= ANY)
WITH examined AS (
    SELECT user_id
    FROM user_write_buckets
    WHERE user_id > $1
    ORDER BY user_id
    LIMIT $2
),
purged AS (
    DELETE FROM user_write_buckets
    WHERE user_id = ANY (ARRAY(SELECT user_id FROM examined))
        -- Checked on the row as it is when deleted: a charge may have taken a token since.
        AND full_at <= clock_timestamp()
    RETURNING 1
)
SELECT (SELECT max(user_id) FROM examined) AS last_user_id, (SELECT count(*) FROM purged) AS purged;
