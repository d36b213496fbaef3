-- name: get_message :val
-- serves: GET /chats/{chat_id}/messages/{message_id}
-- One message of a chat, rendered as the JSON the API answers with, for a
-- caller who may read the chat: the server, or a member in a role of $4
-- (chatsvc/permissions.py).
-- params: $1 chat_id bigint, $2 message_id bigint, $3 caller_user text (null for the server),
--         $4 roles text[] (member roles allowed to read)
-- returns: json {id, chat_id, author, text, created_at, edited_at}, or no row when the
--          chat does not exist, holds no such message, or the caller may not read it (-> 404)
-- uses: messages_pkey (chat_id, id); chat_members_pkey
SELECT to_json(message)
FROM (
    SELECT id, chat_id, author, text, created_at, edited_at
    FROM messages
    WHERE chat_id = $1 AND id = $2
        AND (
            $3::text IS NULL
            OR (
                SELECT role FROM chat_members WHERE chat_id = $1 AND user_id = $3
            ) = ANY ($4::text[])
        )
) AS message;
