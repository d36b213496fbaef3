-- name: get_latest_event_id :val
-- serves: GET /chats/{chat_id}/events
-- Where a fresh event stream starts: the chat's newest event id (its newest
-- message's id or its latest edit's or deletion's, whichever is higher; 0
-- for a chat that never had a message); the stream sends only what comes
-- after it. Also decides whether the caller may follow the chat (the server,
-- or a member in a role of $3: chatsvc/permissions.py). Read after the
-- stream's process watches the chat, so a member removed later has their
-- stream ended by the removal's notification (migrations/0005.members-and-authors.sql).
-- params: $1 chat_id bigint, $2 caller_user text (null for the server), $3 roles text[] (member roles allowed to read)
-- returns: bigint, or no row when the chat does not exist or the caller may not follow it (-> 404)
-- uses: chats_pkey; chat_members_pkey; messages_pkey (chat_id, id) and
--       message_changes_pkey (chat_id, id), the last entry of each for the chat
SELECT greatest(
    coalesce((SELECT max(id) FROM messages WHERE chat_id = chats.id), 0),
    coalesce((SELECT max(id) FROM message_changes WHERE chat_id = chats.id), 0)
)
FROM chats
WHERE id = $1
    AND (
        $2::text IS NULL
        OR (
            SELECT role FROM chat_members WHERE chat_id = $1 AND user_id = $2
        ) = ANY ($3::text[])
    );
