-- name: take_user_writes :many
-- serves: chatsvc serve: every write by a user (each request but GET and HEAD to a protected route), before its handler (chatsvc/app.py)
-- serves: POST /chats (by a user); DELETE /chats/{chat_id} (by a user); POST /chats/{chat_id}/messages (by a user); PUT /chats/{chat_id}/members/{user} (by a user); DELETE /chats/{chat_id}/members/{user} (by a user); PATCH /chats/{chat_id}/messages/{message_id} (by a user); DELETE /chats/{chat_id}/messages/{message_id} (by a user); PUT /chats/{chat_id}/read (by a user)
-- Charges writes to their users' token buckets (migrations/0006): those that
-- queued for a connection together (chatsvc/batching.py), one user's more
-- than once included. A bucket refills by the time elapsed since full_at was
-- set, up to $3 tokens; a user's charges take as many tokens as there are,
-- in the order given, and the rest take nothing and learn how long until a
-- token is there. One row per user: a user's first write inserts it, later
-- ones take its row lock (ON CONFLICT DO UPDATE), so the charges of one user
-- from every process sharing the database run one statement at a time, each
-- seeing the one before it; rows are locked in user id order, so two batches
-- never deadlock. Times are the database's (clock_timestamp(), read once per
-- statement), so processes agree.
-- params: $1 user_ids text[] (one per charge, repeats allowed), $2 per_write interval
--         (1 / CHATSVC_USER_WRITE_RATE seconds), $3 burst integer
-- returns: user_id text, charges integer (in $1), granted integer (how many of
--          them took a token: the first ones), retry_after interval (null when
--          all were granted): how long until the bucket holds a token again
--          (-> 429 for the others, Retry-After its ceiling)
-- uses: user_write_buckets_pkey, as the conflict arbiter: one index probe and
--       one row lock per user, no scan of any table (tests/test_plans.py)
WITH clock AS MATERIALIZED (
    SELECT clock_timestamp() AS now
),
wanted AS (
    SELECT user_id, count(*)::integer AS charges
    FROM unnest($1::text[]) AS user_id
    GROUP BY user_id
),
charged AS (
    INSERT INTO user_write_buckets AS bucket (user_id, full_at, granted)
    -- A bucket not there is full: up to $3 charges are granted.
    SELECT wanted.user_id, clock.now + least(wanted.charges, $3) * $2::interval, least(wanted.charges, $3)
    FROM wanted, clock
    ORDER BY wanted.user_id
    ON CONFLICT (user_id) DO UPDATE
    SET (full_at, granted) = (
        SELECT greatest(bucket.full_at, clock.now) + taken.tokens * $2::interval, taken.tokens
        FROM clock,
            -- excluded.granted is what this statement asked of the bucket (at most $3).
            -- The bucket holds k tokens when its k-th would still leave full_at
            -- within $3 - 1 writes of now.
            LATERAL (
                SELECT greatest(0, least(
                    excluded.granted,
                    floor(
                        extract(epoch FROM clock.now + ($3::integer - 1) * $2::interval
                            - greatest(bucket.full_at, clock.now))
                        / extract(epoch FROM $2::interval)
                    )::integer + 1
                )) AS tokens
            ) AS taken
    )
    RETURNING user_id, full_at, granted
)
SELECT
    charged.user_id,
    wanted.charges,
    charged.granted,
    CASE
        WHEN charged.granted < wanted.charges
        THEN charged.full_at - ($3::integer - 1) * $2::interval - (SELECT now FROM clock)
    END AS retry_after
FROM charged
JOIN wanted USING (user_id);
