-- name: remove_member :one
-- serves: DELETE /chats/{chat_id}/members/{user}
-- Removes a member from a chat when the caller may: the server, or a member
-- in a role of $4, which chatsvc/permissions.py gives for leaving (the caller
-- removes themselves) or for removing others. The chat's row is locked as
-- sends and watch_chat.sql lock it, so the removal and an event stream being
-- opened are ordered: either the stream's start sees the member gone (-> 404)
-- or the removal's trigger sees the stream's process watching and notifies
-- it, which ends the member's streams (migrations/0005.members-and-authors.sql).
-- params: $1 chat_id bigint, $2 user_id text, $3 caller_user text (null for the server),
--         $4 roles text[] (member roles allowed to do this removal)
-- returns: chat_exists bool, caller_role text (the caller's role in the chat;
--          null when not a member), removed bool -> 204, 404 or 403
-- uses: chats_pkey; chat_members_pkey
WITH chat AS (
    SELECT id
    FROM chats
    WHERE id = $1
    FOR NO KEY UPDATE
),
caller AS (
    SELECT role
    FROM chat_members
    WHERE chat_id = $1 AND user_id = $3
),
removed AS (
    DELETE FROM chat_members
    WHERE chat_id = (SELECT id FROM chat)
        AND user_id = $2
        AND ($3::text IS NULL OR (SELECT role FROM caller) = ANY ($4::text[]))
    RETURNING user_id
)
SELECT
    EXISTS (SELECT FROM chat) AS chat_exists,
    (SELECT role FROM caller) AS caller_role,
    EXISTS (SELECT FROM removed) AS removed;
