-- name: create_messages :many
-- serves: POST /chats/{chat_id}/messages
-- Stores the messages of several sends at once: those that queued for a
-- connection together (chatsvc/batching.py), to any chats, the same chat
-- more than once included. Each is rendered as the JSON the API answers with.
-- A send is stored only for a caller who may send there: the server, or a
-- member in a role of $5 (chatsvc/permissions.py).
-- Each chat's row is locked first, as in create_message.sql, so ids increase
-- in the order messages become visible. A send to a chat that does not
-- exist, or by a caller who may not send there, yields no row (-> 404)
-- without failing the rest.
-- The batch never waits for a lock: a chat whose row another transaction
-- holds (a send from another process, a delete in progress) is skipped, and
-- its sends come back unstored, for the caller to send each alone with
-- create_message.sql, which waits. One busy chat cannot stall the others.
-- Messages are inserted in the order given, so their ids rise in that order:
-- the n-th message stored is the n-th send stored.
-- params: $1 chat_ids bigint[], $2 texts text[] (trimmed, 1 to 5000 code points),
--         $3 authors text[] (null: from the application), $4 caller_users text[]
--         (null for the server); all four the same length, the i-th of each is
--         the i-th send. $5 roles text[] (member roles allowed to send)
-- returns: position bigint (1-based index into the arrays), then either
--          id bigint and message json {id, chat_id, author, text, created_at}
--          for a stored message, or null and null for a send whose chat was
--          busy; no row for a send whose chat does not exist or whose caller
--          may not send there
-- uses: chats_pkey; chat_members_pkey; messages_pkey
WITH send AS (
    SELECT chat_id, text, author, caller_user, position
    FROM unnest($1::bigint[], $2::text[], $3::text[], $4::text[])
        WITH ORDINALITY AS send (chat_id, text, author, caller_user, position)
),
chat AS (
    SELECT id
    FROM chats
    WHERE id = ANY ($1::bigint[])
    FOR NO KEY UPDATE SKIP LOCKED
),
stored AS (
    SELECT send.chat_id, send.text, send.author, send.position,
        row_number() OVER (ORDER BY send.position) AS nth
    FROM send
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
    INSERT INTO messages (chat_id, author, text)
    SELECT chat_id, author, text
    FROM stored
    ORDER BY position
    RETURNING
        id,
        (SELECT to_json(message) FROM (SELECT id, chat_id, author, text, created_at) AS message) AS message
)
SELECT stored.position, created.id, created.message
FROM (SELECT id, message, row_number() OVER (ORDER BY id) AS nth FROM created) AS created
JOIN stored USING (nth)
UNION ALL
SELECT send.position, NULL, NULL
FROM send
WHERE send.chat_id NOT IN (SELECT id FROM chat)
    AND EXISTS (SELECT FROM chats WHERE chats.id = send.chat_id);
