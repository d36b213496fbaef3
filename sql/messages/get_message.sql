-- name: get_message :val
-- serves: GET /chats/{chat_id}/messages/{message_id}
-- One message of a chat, rendered as the JSON the API answers with.
-- params: $1 chat_id bigint, $2 message_id bigint
-- returns: json {id, chat_id, text, created_at}, or no row when the chat does
--          not exist or holds no such message (-> 404)
-- uses: messages_pkey (chat_id, id)
SELECT to_json(message)
FROM (
    SELECT id, chat_id, text, created_at
    FROM messages
    WHERE chat_id = $1 AND id = $2
) AS message;
