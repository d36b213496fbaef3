-- name: edit_message :one
-- serves: PATCH /chats/{chat_id}/messages/{message_id}
-- Replaces a message's text and stamps edited_at, when the caller may: the
-- server, a member in a role of $5 (any message), or the message's author in
-- a role of $6 (chatsvc/permissions.py). Its id, author, created_at and
-- place in the chat stay. The edit is logged under an event id drawn while
-- the chat's row is locked, as sends lock it, so event ids follow commit
-- order within the chat (migrations/0007); the log's trigger announces it.
-- params: $1 chat_id bigint, $2 message_id bigint, $3 text text (trimmed, 1 to 5000 code points),
--         $4 caller_user text (null for the server), $5 any_roles text[] (member roles that
--         may edit any message), $6 own_roles text[] (member roles that may edit their own)
-- returns: caller_role text (null when not a member), found bool (the chat holds the
--          message; only computed when nothing was edited), message json {id, chat_id,
--          author, text, created_at, edited_at} (null when nothing was edited) -> 200, 404 or 403
-- uses: chats_pkey; chat_members_pkey; messages_pkey (one lookup); message_changes_pkey
WITH chat AS (
    SELECT id
    FROM chats
    WHERE id = $1
    FOR NO KEY UPDATE
),
caller AS (
    SELECT role
    FROM chat_members
    WHERE chat_id = $1 AND user_id = $4
),
edited AS (
    UPDATE messages
    SET text = $3, edited_at = clock_timestamp()
    FROM chat
    WHERE messages.chat_id = chat.id AND messages.id = $2
        AND (
            $4::text IS NULL
            OR (SELECT role FROM caller) = ANY ($5::text[])
            OR (messages.author = $4 AND (SELECT role FROM caller) = ANY ($6::text[]))
        )
    -- rendered is the new text's (a generated column: migrations/0010)
    RETURNING messages.id, messages.chat_id, messages.rendered
),
logged AS (
    INSERT INTO message_changes (chat_id, id, message_id, deleted)
    SELECT chat_id, nextval(pg_get_serial_sequence('messages', 'id')), id, false
    FROM edited
)
SELECT
    (SELECT role FROM caller) AS caller_role,
    CASE
        WHEN EXISTS (SELECT FROM edited) THEN true
        ELSE EXISTS (SELECT FROM messages WHERE chat_id = $1 AND id = $2)
    END AS found,
    (SELECT rendered FROM edited) AS message;
