-- name: create_messages :many
-- serves: POST /chats/{chat_id}/messages
-- Stores the messages of several sends at once: those that queued for a
-- connection together (chatsvc/batching.py), to any chats, the same chat
-- more than once included. Each is rendered as the JSON the API answers with.
-- A user's send is first charged to the user's write limit, in this same
-- statement: the upsert of sql/limits/take_user_writes.sql (migrations/0006),
-- here rather than in a statement of its own before the send, which cost a
-- round trip per batch (bench/compare.py . . --before-auth off: post_message
-- with user tokens at 0.79 of its throughput with CHATSVC_AUTH=off, and 0.99
-- this way). A user's sends take the tokens
-- there are in the order given; the rest come back refused (-> 429) with how
-- long until a token is there, and are not stored. Every charged send counts,
-- stored or not, as any write request does.
-- A send is stored only for a caller who may send there: the server, or a
-- member in a role of $5 (chatsvc/permissions.py).
-- Each chat's row is locked first, as in create_message.sql, so ids increase
-- in the order messages become visible. A send to a chat that does not
-- exist, or by a caller who may not send there, yields no row (-> 404)
-- without failing the rest.
-- The batch never waits for a chat's lock: a chat whose row another
-- transaction holds (a send from another process, a delete in progress) is
-- skipped, and its sends come back unstored, for the caller to send each
-- alone with create_message.sql, which waits (and charges nothing: they were
-- charged here). One busy chat cannot stall the others. Bucket rows are
-- locked in user id order, as take_user_writes.sql does, so no two
-- statements wait for each other in a cycle.
-- Messages are inserted in the order given, so their ids rise in that order:
-- the n-th message stored is the n-th send stored. Each takes its chat's next
-- seq, and each chat's counters move once (migrations/0007). A batch with a
-- send to a chat some process follows commits without waiting for its WAL
-- flush, and the service flushes before it answers (unflushed:
-- sql/events/flush_commits.sql says why).
-- params: $1 chat_ids bigint[], $2 texts text[] (trimmed, 1 to 5000 code points),
--         $3 authors text[] (null: from the application), $4 caller_users text[]
--         (null for the server, who is not charged); all four the same length, the
--         i-th of each is the i-th send. $5 roles text[] (member roles allowed to send),
--         $6 per_write interval (1 / CHATSVC_USER_WRITE_RATE seconds), $7 burst integer
-- returns: position bigint (1-based index into the arrays), then id bigint,
--          message json {id, chat_id, author, text, created_at, edited_at} and retry_after
--          interval, and unflushed bool (the commit must be flushed: flush_commits.sql;
--          on stored messages only): a stored message (retry_after null), a send refused by the
--          write limit (id and message null; retry_after: until a token is
--          there), or a send whose chat was busy (all three null); no row for
--          a send whose chat does not exist or whose caller may not send there
-- uses: user_write_buckets_pkey (one probe and row lock per user); chats_pkey;
--       chat_members_pkey; messages_pkey; chat_listeners_pkey
WITH clock AS MATERIALIZED (
    SELECT clock_timestamp() AS now
),
send AS (
    SELECT chat_id, text, author, caller_user, position,
        row_number() OVER (PARTITION BY caller_user ORDER BY position) AS nth_of_user
    FROM unnest($1::bigint[], $2::text[], $3::text[], $4::text[])
        WITH ORDINALITY AS send (chat_id, text, author, caller_user, position)
),
wanted AS (
    SELECT caller_user AS user_id, count(*)::integer AS charges
    FROM send
    WHERE caller_user IS NOT NULL
    GROUP BY caller_user
),
-- The charge: as in sql/limits/take_user_writes.sql, which says how it counts.
charged AS (
    INSERT INTO user_write_buckets AS bucket (user_id, full_at, granted)
    SELECT wanted.user_id, clock.now + least(wanted.charges, $7) * $6::interval, least(wanted.charges, $7)
    FROM wanted, clock
    ORDER BY wanted.user_id
    ON CONFLICT (user_id) DO UPDATE
    SET (full_at, granted) = (
        SELECT greatest(bucket.full_at, clock.now) + taken.tokens * $6::interval, taken.tokens
        FROM clock,
            LATERAL (
                SELECT greatest(0, least(
                    excluded.granted,
                    floor(
                        extract(epoch FROM clock.now + ($7::integer - 1) * $6::interval
                            - greatest(bucket.full_at, clock.now))
                        / extract(epoch FROM $6::interval)
                    )::integer + 1
                )) AS tokens
            ) AS taken
    )
    RETURNING user_id, full_at, granted
),
refused AS (
    SELECT send.position, charged.full_at - ($7::integer - 1) * $6::interval - clock.now AS retry_after
    FROM send
    JOIN charged ON charged.user_id = send.caller_user
    CROSS JOIN clock
    WHERE send.nth_of_user > charged.granted
),
allowed AS (
    SELECT * FROM send WHERE position NOT IN (SELECT position FROM refused)
),
chat AS (
    SELECT id, sent_count
    FROM chats
    WHERE id = ANY ($1::bigint[])
    FOR NO KEY UPDATE SKIP LOCKED
),
stored AS (
    SELECT send.chat_id, send.text, send.author, send.position,
        row_number() OVER (ORDER BY send.position) AS nth,
        chat.sent_count + row_number() OVER (PARTITION BY send.chat_id ORDER BY send.position) AS seq
    FROM allowed AS send
    JOIN chat ON chat.id = send.chat_id
    -- A scalar subquery, not EXISTS: it stays one primary-key probe per send,
    -- where the planner could turn an EXISTS into a scan of every membership.
    WHERE send.caller_user IS NULL
        OR (
            SELECT member.role
            FROM chat_members AS member
            WHERE member.chat_id = send.chat_id AND member.user_id = send.caller_user
        ) = ANY ($5::text[])
),
created AS (
    INSERT INTO messages (chat_id, seq, author, text)
    SELECT chat_id, seq, author, text
    FROM stored
    ORDER BY position
    RETURNING id, chat_id, rendered AS message
),
counted AS (
    UPDATE chats
    SET sent_count = chats.sent_count + sent.messages, last_message_id = sent.last_message_id, listed_activity = NULL
    FROM (
        SELECT chat_id, count(*) AS messages, max(id) AS last_message_id
        FROM created
        GROUP BY chat_id
    ) AS sent
    WHERE chats.id = sent.chat_id
),
-- For this transaction only: commit without waiting for the WAL flush.
unflushed AS MATERIALIZED (
    SELECT set_config('synchronous_commit', 'off', true)
    FROM chat
    WHERE chat.id IN (SELECT chat_id FROM stored)
        AND EXISTS (SELECT FROM chat_listeners WHERE chat_listeners.chat_id = chat.id)
)
SELECT stored.position, created.id, created.message, NULL::interval AS retry_after,
    EXISTS (SELECT FROM unflushed) AS unflushed
FROM (SELECT id, message, row_number() OVER (ORDER BY id) AS nth FROM created) AS created
JOIN stored USING (nth)
UNION ALL
SELECT position, NULL, NULL, retry_after, false
FROM refused
UNION ALL
SELECT send.position, NULL, NULL, NULL, false
FROM allowed AS send
WHERE send.chat_id NOT IN (SELECT id FROM chat)
    AND EXISTS (SELECT FROM chats WHERE chats.id = send.chat_id);
