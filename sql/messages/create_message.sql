-- name: create_message :one
-- serves: POST /chats/{chat_id}/messages (a send whose chat a batch found busy)
-- Stores a message in a chat and renders it as the JSON the API answers with
-- (the column names of the inner SELECT are the JSON keys), when the caller
-- may send there: the server, or a member in a role of $5 (chatsvc/permissions.py).
-- Locking the chat's row first serialises the sends of one chat: each draws
-- its id only after the previous send committed, so ids increase in the order
-- messages become visible. A chat deleted before or during the send yields no
-- row (-> 404): DELETE takes a conflicting lock, and once it commits the
-- locked row is gone, so the INSERT selects nothing. The message takes the
-- chat's next seq, and the chat's counters move (migrations/0007).
-- A send to a chat some process follows commits without waiting for its WAL
-- flush, and the service flushes before it answers (sql/events/flush_commits.sql
-- says why); unflushed says so.
-- params: $1 chat_id bigint, $2 text text (trimmed, 1 to 5000 code points),
--         $3 author text (null: from the application), $4 caller_user text (null for the server),
--         $5 roles text[] (member roles allowed to send)
-- returns: id bigint, message json {id, chat_id, author, text, created_at, edited_at},
--          unflushed bool (the commit must be flushed: flush_commits.sql), or no
--          row when the chat does not exist or the caller may not send there
-- uses: chats_pkey; chat_members_pkey; messages_pkey; chat_listeners_pkey
WITH chat AS (
    SELECT id, sent_count
    FROM chats
    WHERE id = $1
        AND (
            $4::text IS NULL
            OR (
                SELECT role FROM chat_members WHERE chat_id = $1 AND user_id = $4
            ) = ANY ($5::text[])
        )
    FOR NO KEY UPDATE
),
created AS (
    INSERT INTO messages (chat_id, seq, author, text)
    SELECT chat.id, chat.sent_count + 1, $3, $2
    FROM chat
    RETURNING id, chat_id, rendered
),
counted AS (
    UPDATE chats
    SET sent_count = sent_count + 1, last_message_id = created.id, listed_activity = NULL
    FROM created
    WHERE chats.id = created.chat_id
),
-- For this transaction only: commit without waiting for the WAL flush.
unflushed AS MATERIALIZED (
    SELECT set_config('synchronous_commit', 'off', true)
    FROM chat
    WHERE EXISTS (SELECT FROM chat_listeners WHERE chat_listeners.chat_id = chat.id)
)
SELECT id, rendered AS message, EXISTS (SELECT FROM unflushed) AS unflushed
FROM created;
