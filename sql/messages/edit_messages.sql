-- name: edit_messages :many
-- serves: PATCH /chats/{chat_id}/messages/{message_id}
-- Edits several messages at once: the edits that queued for a connection
-- together (chatsvc/batching.py), in any chats, each message at most once
-- (chatsvc/changes.py sends a second edit of a message alone). Each edit is
-- what edit_message.sql does alone: it replaces the text and stamps
-- edited_at when the caller may (the server, a member in a role of $5 for
-- any message, the message's author in a role of $6), and logs the edit
-- under an event id drawn while the chat's row is locked (migrations/0007);
-- the log's trigger announces each.
-- A user's edit is first charged to the user's write limit, in this same
-- statement, as create_messages.sql charges sends (the upsert of
-- sql/limits/take_user_writes.sql, which says how it counts): a charge in a
-- statement of its own cost a round trip and a commit per batch. A user's
-- edits take the tokens there are in the order given; the rest come back
-- refused (-> 429) and edit nothing. Every charged edit counts, done or not.
-- The batch never waits for a chat's lock: an edit whose chat another
-- transaction holds comes back busy, for the caller to run it alone with
-- edit_message.sql, which waits (and charges nothing: it was charged here).
-- params: $1 chat_ids bigint[], $2 message_ids bigint[], $3 texts text[] (trimmed, 1 to
--         5000 code points), $4 caller_users text[] (null for the server, who is not
--         charged); all four the same length, the i-th of each is the i-th edit.
--         $5 any_roles text[] (member roles that may edit any message),
--         $6 own_roles text[] (member roles that may edit their own),
--         $7 per_write interval (1 / CHATSVC_USER_WRITE_RATE seconds), $8 burst integer
-- returns: one row per edit: position bigint (1-based index into the arrays), then
--          message json {id, chat_id, author, text, created_at, edited_at} (null when
--          nothing was edited), retry_after interval (the write limit refused it: until
--          a token is there), busy bool (another transaction held the chat), caller_role
--          text (null when not a member) and found bool (the chat holds the message),
--          the last two for an edit refused otherwise -> 200, 429, alone, 403 or 404
-- uses: user_write_buckets_pkey (one probe and row lock per user); chats_pkey;
--       chat_members_pkey; messages_pkey (one lookup per edit); message_changes_pkey
WITH clock AS MATERIALIZED (
    SELECT clock_timestamp() AS now
),
edit AS (
    SELECT chat_id, message_id, text, caller_user, position,
        row_number() OVER (PARTITION BY caller_user ORDER BY position) AS nth_of_user
    FROM unnest($1::bigint[], $2::bigint[], $3::text[], $4::text[])
        WITH ORDINALITY AS edit (chat_id, message_id, text, caller_user, position)
),
wanted AS (
    SELECT caller_user AS user_id, count(*)::integer AS charges
    FROM edit
    WHERE caller_user IS NOT NULL
    GROUP BY caller_user
),
-- The charge: as in sql/limits/take_user_writes.sql, which says how it counts.
charged AS (
    INSERT INTO user_write_buckets AS bucket (user_id, full_at, granted)
    SELECT wanted.user_id, clock.now + least(wanted.charges, $8) * $7::interval, least(wanted.charges, $8)
    FROM wanted, clock
    ORDER BY wanted.user_id
    ON CONFLICT (user_id) DO UPDATE
    SET (full_at, granted) = (
        SELECT greatest(bucket.full_at, clock.now) + taken.tokens * $7::interval, taken.tokens
        FROM clock,
            LATERAL (
                SELECT greatest(0, least(
                    excluded.granted,
                    floor(
                        extract(epoch FROM clock.now + ($8::integer - 1) * $7::interval
                            - greatest(bucket.full_at, clock.now))
                        / extract(epoch FROM $7::interval)
                    )::integer + 1
                )) AS tokens
            ) AS taken
    )
    RETURNING user_id, full_at, granted
),
refused AS (
    SELECT edit.position, charged.full_at - ($8::integer - 1) * $7::interval - clock.now AS retry_after
    FROM edit
    JOIN charged ON charged.user_id = edit.caller_user
    CROSS JOIN clock
    WHERE edit.nth_of_user > charged.granted
),
chat AS (
    SELECT id
    FROM chats
    WHERE id = ANY ($1::bigint[])
    FOR NO KEY UPDATE SKIP LOCKED
),
-- Each allowed edit whose chat the batch holds, with the caller's role there.
allowed AS (
    SELECT edit.*,
        -- A scalar subquery: one primary-key probe per edit.
        (
            SELECT member.role
            FROM chat_members AS member
            WHERE member.chat_id = edit.chat_id AND member.user_id = edit.caller_user
        ) AS caller_role
    FROM edit
    JOIN chat ON chat.id = edit.chat_id
    WHERE edit.position NOT IN (SELECT position FROM refused)
),
edited AS (
    UPDATE messages
    SET text = allowed.text, edited_at = clock_timestamp()
    FROM allowed
    WHERE messages.chat_id = allowed.chat_id AND messages.id = allowed.message_id
        AND (
            allowed.caller_user IS NULL
            OR allowed.caller_role = ANY ($5::text[])
            OR (messages.author = allowed.caller_user AND allowed.caller_role = ANY ($6::text[]))
        )
    RETURNING
        allowed.position,
        messages.chat_id,
        messages.id,
        messages.rendered AS message  -- the new text's (a generated column: migrations/0010)
),
logged AS (
    INSERT INTO message_changes (chat_id, id, message_id, deleted)
    SELECT chat_id, nextval(pg_get_serial_sequence('messages', 'id')), id, false
    FROM edited
)
SELECT position, message, NULL::interval AS retry_after, false AS busy, NULL::text AS caller_role, true AS found
FROM edited
UNION ALL
SELECT position, NULL, retry_after, false, NULL, NULL
FROM refused
UNION ALL
SELECT edit.position, NULL, NULL, true, NULL, NULL
FROM edit
WHERE edit.chat_id NOT IN (SELECT id FROM chat)
    AND edit.position NOT IN (SELECT position FROM refused)
    AND EXISTS (SELECT FROM chats WHERE chats.id = edit.chat_id)
UNION ALL
SELECT allowed.position, NULL, NULL, false, allowed.caller_role,
    EXISTS (SELECT FROM messages WHERE messages.chat_id = allowed.chat_id AND messages.id = allowed.message_id)
FROM allowed
WHERE allowed.position NOT IN (SELECT position FROM edited);
