-- name: get_latest_message_id :val
-- serves: GET /chats/{chat_id}/events
-- Where a fresh event stream starts: the chat's newest message id (0 for a
-- chat with no messages); the stream sends only messages above it. Also
-- decides whether the caller may follow the chat (the server, or a member in
-- a role of $3: chatsvc/permissions.py). Read after the stream's process
-- watches the chat, so a member removed later has their stream ended by the
-- removal's notification (migrations/0005.members-and-authors.sql).
-- params: $1 chat_id bigint, $2 caller_user text (null for the server), $3 roles text[] (member roles allowed to read)
-- returns: bigint, or no row when the chat does not exist or the caller may not follow it (-> 404)
-- uses: chats_pkey; chat_members_pkey; messages_pkey (chat_id, id), its last entry for the chat
SELECT coalesce((SELECT max(id) FROM messages WHERE chat_id = chats.id), 0)
FROM chats
WHERE id = $1
    AND (
        $2::text IS NULL
        OR (
            SELECT role FROM chat_members WHERE chat_id = $1 AND user_id = $2
        ) = ANY ($3::text[])
    );
