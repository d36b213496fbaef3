-- name: create_messages :many
-- serves: POST /chats/{chat_id}/messages
-- Stores the messages of several sends at once: those that queued for a
-- connection together (chatsvc/batching.py), to any chats, the same chat
-- more than once included. Each is rendered as the JSON the API answers with.
-- Each chat's row is locked first, as in create_message.sql, so ids increase
-- in the order messages become visible. A send to a chat that does not exist
-- yields no row (-> 404) without failing the rest.
-- The batch never waits for a lock: a chat whose row another transaction
-- holds (a send from another process, a delete in progress) is skipped, and
-- its sends come back unstored, for the caller to send each alone with
-- create_message.sql, which waits. One busy chat cannot stall the others.
-- Messages are inserted in the order given, so their ids rise in that order:
-- the n-th message stored is the n-th send whose chat was locked.
-- params: $1 chat_ids bigint[], $2 texts text[] (same length; the i-th text,
--         trimmed, 1 to 5000 code points, goes to the i-th chat)
-- returns: position bigint (1-based index into the arrays), then either
--          id bigint and message json {id, chat_id, text, created_at} for a
--          stored message, or null and null for a send whose chat was busy;
--          no row for a send whose chat does not exist
-- uses: chats_pkey; messages_pkey
WITH send AS (
    SELECT chat_id, text, position
    FROM unnest($1::bigint[], $2::text[]) WITH ORDINALITY AS send (chat_id, text, position)
),
chat AS (
    SELECT id
    FROM chats
    WHERE id = ANY ($1::bigint[])
    FOR NO KEY UPDATE SKIP LOCKED
),
stored AS (
    SELECT send.chat_id, send.text, send.position, row_number() OVER (ORDER BY send.position) AS nth
    FROM send
    JOIN chat ON chat.id = send.chat_id
),
created AS (
    INSERT INTO messages (chat_id, text)
    SELECT chat_id, text
    FROM stored
    ORDER BY position
    RETURNING
        id,
        (SELECT to_json(message) FROM (SELECT id, chat_id, text, created_at) AS message) AS message
)
SELECT stored.position, created.id, created.message
FROM (SELECT id, message, row_number() OVER (ORDER BY id) AS nth FROM created) AS created
JOIN stored USING (nth)
UNION ALL
SELECT send.position, NULL, NULL
FROM send
WHERE send.chat_id NOT IN (SELECT id FROM chat)
    AND EXISTS (SELECT FROM chats WHERE chats.id = send.chat_id);
