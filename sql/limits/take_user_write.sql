-- name: take_user_write :one
-- serves: chatsvc serve: every write by a user (each request but GET and HEAD to a protected route), before its handler (chatsvc/app.py)
-- serves: POST /chats (by a user); DELETE /chats/{chat_id} (by a user); POST /chats/{chat_id}/messages (by a user); PUT /chats/{chat_id}/members/{user} (by a user); DELETE /chats/{chat_id}/members/{user} (by a user)
-- Charges one write to the user's token bucket (migrations/0006): the bucket
-- refills by the time elapsed since full_at was set, up to $3 tokens, and a
-- write takes one if there is one; otherwise it takes nothing and says how
-- long until one is there. One statement, one row: a user's first write
-- inserts the row (a full bucket less one token); later ones take its row
-- lock (ON CONFLICT DO UPDATE), so charges of one user from every process
-- sharing the database run one at a time, each seeing the one before it.
-- Times are the database's (clock_timestamp(), read once per charge), so
-- processes agree. Writes of other users take other rows: no wait between them.
-- params: $1 user_id text, $2 per_write interval (1 / CHATSVC_USER_WRITE_RATE seconds), $3 burst integer
-- returns: taken bool; retry_after interval (null when taken): how long until
--          the bucket holds a token again (-> 429, Retry-After its ceiling)
-- uses: user_write_buckets_pkey, as the conflict arbiter: one index probe and
--       one row lock per charge, no scan of any table. EXPLAIN (generic plan):
--       Insert on user_write_buckets (Conflict Resolution: UPDATE; Conflict
--       Arbiter Indexes: user_write_buckets_pkey) over a CTE Scan of clock (a
--       Result: one row); the SET's subquery is a SubPlan and RETURNING's an
--       InitPlan, each a CTE Scan of that row (tests/test_plans.py)
WITH clock AS MATERIALIZED (
    SELECT clock_timestamp() AS now
)
INSERT INTO user_write_buckets AS bucket (user_id, full_at, refused)
SELECT $1, now + $2::interval, false FROM clock
ON CONFLICT (user_id) DO UPDATE
SET (full_at, refused) = (
    SELECT
        CASE WHEN has_token THEN greatest(bucket.full_at, now) + $2::interval ELSE bucket.full_at END,
        NOT has_token
    FROM clock,
        -- At least one token: the bucket lacks at most $3 - 1 of them.
        LATERAL (SELECT bucket.full_at <= now + ($3::integer - 1) * $2::interval AS has_token) AS state
)
RETURNING
    NOT refused AS taken,
    CASE WHEN refused THEN full_at - ($3::integer - 1) * $2::interval - (SELECT now FROM clock) END AS retry_after;
