-- name: delete_chat :val
-- serves: DELETE /chats/{chat_id}
-- Deletes a chat; its messages go with it in the same statement
-- (messages.chat_id ON DELETE CASCADE). Waits for sends in progress on the
-- chat (they hold its row lock), so none of them leaves a message behind.
-- params: $1 chat_id bigint
-- returns: the deleted chat's id, or no row when it did not exist (-> 404)
-- uses: chats_pkey; messages_pkey (chat_id, id) for the cascade
DELETE FROM chats
WHERE id = $1
RETURNING id;
