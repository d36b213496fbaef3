-- name: get_latest_message_id :val
-- serves: GET /chats/{chat_id}/events
-- Where a fresh event stream starts: the chat's newest message id (0 for a
-- chat with no messages); the stream sends only messages above it.
-- params: $1 chat_id bigint
-- returns: bigint, or no row when the chat does not exist (-> 404)
-- uses: chats_pkey; messages_pkey (chat_id, id), its last entry for the chat
SELECT coalesce((SELECT max(id) FROM messages WHERE chat_id = chats.id), 0)
FROM chats
WHERE id = $1;
