-- name: delete_messages :many
-- serves: DELETE /chats/{chat_id}/messages/{message_id}
-- Deletes several messages at once: the deletions that queued for a
-- connection together (chatsvc/batching.py), in any chats, each message at
-- most once (chatsvc/changes.py sends a second deletion of a message alone).
-- Each deletion is what delete_message.sql does alone: it deletes the
-- message, its text with it, when the caller may (the server, a member in a
-- role of $4 for any message, the message's author in a role of $5), and
-- leaves a row of the change log, the message's id and seq under an event id
-- drawn while the chat's row is locked (migrations/0007); the log's trigger
-- announces each. Each chat's row moves once: when its newest message goes,
-- its activity falls back to the newest one left, past every message this
-- statement deletes (they are still visible to it), or to its creation; its
-- last_deleted_seq records the highest seq deleted.
-- A user's deletion is first charged to the user's write limit, in this same
-- statement, as edit_messages.sql charges edits (the upsert of
-- sql/limits/take_user_writes.sql, which says how it counts): a charge in a
-- statement of its own cost a round trip and a commit per batch. A user's
-- deletions take the tokens there are in the order given; the rest come back
-- refused (-> 429) and delete nothing. Every charged deletion counts, done or not.
-- The batch never waits for a chat's lock: a deletion whose chat another
-- transaction holds comes back busy, for the caller to run it alone with
-- delete_message.sql, which waits (and charges nothing: it was charged here).
-- params: $1 chat_ids bigint[], $2 message_ids bigint[], $3 caller_users text[] (null for
--         the server, who is not charged); all three the same length, the i-th of each
--         is the i-th deletion. $4 any_roles text[] (member roles that may delete any
--         message), $5 own_roles text[] (member roles that may delete their own),
--         $6 per_write interval (1 / CHATSVC_USER_WRITE_RATE seconds), $7 burst integer
-- returns: one row per deletion: position bigint (1-based index into the arrays), then
--          deleted bool (true; null for one not done), retry_after interval (the write limit refused it: until a token
--          is there), busy bool (another transaction held the chat), caller_role text
--          (null when not a member) and found bool (the chat holds the message), the last
--          two for a deletion refused otherwise -> 204, 429, alone, 403 or 404
-- uses: user_write_buckets_pkey (one probe and row lock per user); chats_pkey;
--       chat_members_pkey; messages_pkey (one lookup per deletion, and one backward
--       probe per chat whose newest message goes); message_changes_pkey
WITH clock AS MATERIALIZED (
    SELECT clock_timestamp() AS now
),
deletion AS (
    SELECT chat_id, message_id, caller_user, position,
        row_number() OVER (PARTITION BY caller_user ORDER BY position) AS nth_of_user
    FROM unnest($1::bigint[], $2::bigint[], $3::text[])
        WITH ORDINALITY AS deletion (chat_id, message_id, caller_user, position)
),
wanted AS (
    SELECT caller_user AS user_id, count(*)::integer AS charges
    FROM deletion
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
    SELECT deletion.position, charged.full_at - ($7::integer - 1) * $6::interval - clock.now AS retry_after
    FROM deletion
    JOIN charged ON charged.user_id = deletion.caller_user
    CROSS JOIN clock
    WHERE deletion.nth_of_user > charged.granted
),
chat AS (
    SELECT id, last_message_id
    FROM chats
    WHERE id = ANY ($1::bigint[])
    FOR NO KEY UPDATE SKIP LOCKED
),
-- Each allowed deletion whose chat the batch holds, with the caller's role there.
allowed AS (
    SELECT deletion.*,
        -- A scalar subquery: one primary-key probe per deletion.
        (
            SELECT member.role
            FROM chat_members AS member
            WHERE member.chat_id = deletion.chat_id AND member.user_id = deletion.caller_user
        ) AS caller_role
    FROM deletion
    JOIN chat ON chat.id = deletion.chat_id
    WHERE deletion.position NOT IN (SELECT position FROM refused)
),
deleted AS (
    DELETE FROM messages
    USING allowed
    WHERE messages.chat_id = allowed.chat_id AND messages.id = allowed.message_id
        AND (
            allowed.caller_user IS NULL
            OR allowed.caller_role = ANY ($4::text[])
            OR (messages.author = allowed.caller_user AND allowed.caller_role = ANY ($5::text[]))
        )
    RETURNING allowed.position, messages.chat_id, messages.id, messages.seq
),
logged AS (
    INSERT INTO message_changes (chat_id, id, message_id, deleted, seq)
    SELECT chat_id, nextval(pg_get_serial_sequence('messages', 'id')), id, true, seq
    FROM deleted
),
-- Per chat: the ids deleted, the highest seq, and whether the newest message went.
gone AS (
    SELECT deleted.chat_id, array_agg(deleted.id) AS ids, max(deleted.seq) AS seq,
        bool_or(deleted.id = chat.last_message_id) AS newest
    FROM deleted
    JOIN chat ON chat.id = deleted.chat_id
    GROUP BY deleted.chat_id
),
moved AS (
    UPDATE chats
    SET
        last_message_id = CASE
            WHEN gone.newest THEN (
                SELECT earlier.id
                FROM messages AS earlier
                WHERE earlier.chat_id = gone.chat_id AND earlier.id < chats.last_message_id
                    AND earlier.id <> ALL (gone.ids)
                ORDER BY earlier.id DESC
                LIMIT 1
            )
            ELSE chats.last_message_id
        END,
        -- the chat's activity moves back with its newest message: unlisted (migrations/0008)
        listed_activity = CASE WHEN gone.newest THEN NULL ELSE chats.listed_activity END,
        last_deleted_seq = greatest(chats.last_deleted_seq, gone.seq)
    FROM gone
    WHERE chats.id = gone.chat_id
)
SELECT position, true AS deleted, NULL::interval AS retry_after, false AS busy, NULL::text AS caller_role,
    true AS found
FROM deleted
UNION ALL
SELECT position, NULL, retry_after, false, NULL, NULL
FROM refused
UNION ALL
SELECT deletion.position, NULL, NULL, true, NULL, NULL
FROM deletion
WHERE deletion.chat_id NOT IN (SELECT id FROM chat)
    AND deletion.position NOT IN (SELECT position FROM refused)
    AND EXISTS (SELECT FROM chats WHERE chats.id = deletion.chat_id)
UNION ALL
SELECT allowed.position, NULL, NULL, false, allowed.caller_role,
    EXISTS (SELECT FROM messages WHERE messages.chat_id = allowed.chat_id AND messages.id = allowed.message_id)
FROM allowed
WHERE allowed.position NOT IN (SELECT position FROM deleted);
