-- name: watch_chat :val
-- serves: GET /chats/{chat_id}/events
-- Registers a process's LISTEN connection (this session) as watching a chat,
-- so that sends to it NOTIFY (migrations/0004.notify-only-watched-chats.sql).
-- Run on the LISTEN connection itself, before the stream reads where it
-- starts. Locking the chat's row orders this with sends in progress, which
-- lock it too: see the migration for why no event can slip between.
-- params: $1 chat_id bigint
-- returns: the chat's id, or no row when the chat does not exist (-> 404)
-- uses: chats_pkey; chat_listeners_pkey
WITH chat AS (
    SELECT id
    FROM chats
    WHERE id = $1
    FOR NO KEY UPDATE
),
registered AS (
    INSERT INTO chat_listeners (chat_id, listener_pid)
    SELECT id, pg_backend_pid() FROM chat
    ON CONFLICT DO NOTHING
)
SELECT id FROM chat;
