-- name: get_message :many
-- serves: GET /chats/{chat_id}/messages/{message_id}
-- Messages, one per wanted (chat, message, caller), each rendered as the JSON
-- the API answers with, for a caller who may read the chat: the server, or a
-- member in a role of $4 (chatsvc/permissions.py). One call answers every such
-- read that arrived while the service's connections were busy
-- (chatsvc/reads.py); under light load it is a single message.
-- params: $1 chat_ids bigint[], $2 message_ids bigint[], $3 caller_users text[] (null for the server;
--         all three the same length), $4 roles text[] (member roles allowed to read)
-- returns: chat_id bigint, message_id bigint, caller_user text,
--          message text, JSON {id, chat_id, author, text, created_at, edited_at}, null when the chat does
--          not exist, holds no such message, or the caller may not read it (-> 404)
-- uses: messages_pkey (chat_id, id); chat_members_pkey
SELECT
    wanted.chat_id,
    wanted.message_id,
    wanted.caller_user,
    (
        -- Its stored rendering (migrations/0010).
        SELECT rendered
        FROM messages
        WHERE chat_id = wanted.chat_id AND id = wanted.message_id
            AND (
                wanted.caller_user IS NULL
                OR (
                    SELECT role
                    FROM chat_members
                    WHERE chat_id = wanted.chat_id AND user_id = wanted.caller_user
                ) = ANY ($4::text[])
            )
    ) AS message
FROM unnest($1::bigint[], $2::bigint[], $3::text[]) AS wanted (chat_id, message_id, caller_user);
