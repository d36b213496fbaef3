-- name: create_message_once :one
-- serves: POST /chats/{chat_id}/messages (with an Idempotency-Key)
-- POST /chats/{id}/messages/ with an Idempotency-Key: stores the message and
-- records the key (scoped to the chat) in one statement or, when the key is
-- already recorded in this chat, stores nothing and returns the message the
-- key stored. Locks the chat's row first, like create_message.sql, so sends
-- stay ordered and a deleted chat yields no row (-> 404); its keys went with it.
-- Two first requests racing with one key: the second one's key insert fails
-- on message_idempotency_keys_pkey and its message is rolled back with it;
-- the caller runs the statement again and now finds the key (chatsvc/queries.py).
-- params: $1 chat_id bigint, $2 text text (trimmed, 1 to 5000 code points), $3 key text (1 to 255 visible ASCII characters)
-- returns: id bigint (the message's), replayed bool, same_text bool (the
--          retry's text equals the stored one), message json
--          {id, chat_id, text, created_at}; no row when the chat does not exist
-- uses: chats_pkey; message_idempotency_keys_pkey; messages_pkey
WITH chat AS (
    SELECT id
    FROM chats
    WHERE id = $1
    FOR NO KEY UPDATE
),
earlier AS (
    SELECT message.id, message.text = $2 AS same_text, to_json(message) AS message
    FROM chat
    JOIN message_idempotency_keys AS key_row ON key_row.chat_id = chat.id
    JOIN LATERAL (
        SELECT id, chat_id, text, created_at
        FROM messages
        WHERE chat_id = key_row.chat_id AND id = key_row.message_id
    ) AS message ON true
    WHERE key_row.key = $3
),
created AS (
    INSERT INTO messages (chat_id, text)
    SELECT chat.id, $2
    FROM chat
    WHERE NOT EXISTS (SELECT FROM earlier)
    RETURNING id, chat_id, text, created_at
),
recorded AS (
    INSERT INTO message_idempotency_keys (chat_id, key, message_id)
    SELECT chat_id, $3, id FROM created
)
SELECT id, false AS replayed, true AS same_text, to_json(created) AS message FROM created
UNION ALL
SELECT id, true, same_text, message FROM earlier;
