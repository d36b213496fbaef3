-- name: delete_chat :one
-- serves: DELETE /chats/{chat_id}
-- Deletes a chat when the caller may (the server, or a member whose role
-- chatsvc/permissions.py allows: $3); its messages, members and message
-- keys go with it in the same statement (their chat_id foreign keys
-- cascade; chat keys stay, so a retry of the create finds its key and gets 404). Waits for
-- sends in progress on the chat (they hold its row lock), so none of them
-- leaves a message behind.
-- params: $1 chat_id bigint, $2 caller_user text (null for the server), $3 roles text[] (allowed to delete)
-- returns: deleted_id bigint (null when nothing was deleted: no such chat, or
--          not allowed), caller_role text (the caller's role in the chat, null
--          when not a member) -> 204, 404 or 403
-- uses: chats_pkey; chat_members_pkey; the cascades' indexes leading with chat_id
WITH caller AS (
    SELECT role
    FROM chat_members
    WHERE chat_id = $1 AND user_id = $2
),
deleted AS (
    DELETE FROM chats
    WHERE id = $1
        AND ($2::text IS NULL OR (SELECT role FROM caller) = ANY ($3::text[]))
    RETURNING id
)
SELECT (SELECT id FROM deleted) AS deleted_id, (SELECT role FROM caller) AS caller_role;
