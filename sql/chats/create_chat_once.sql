-- name: create_chat_once :one
-- serves: POST /chats (with an Idempotency-Key)
-- POST /chats/ with an Idempotency-Key: creates the chat and records the key
-- in one statement or, when the key is already recorded, creates nothing and
-- returns what the key created. Two first requests racing with one key: the
-- second one's key insert waits for the first, then fails on
-- chat_idempotency_keys_pkey and its chat is rolled back with it; the caller
-- runs the statement again and now finds the key (chatsvc/queries.py).
-- params: $1 title text (trimmed, 1 to 200 code points), $2 key text (1 to 255 visible ASCII characters)
-- returns: id bigint (the chat's), replayed bool, same_title bool (the retry's
--          title equals the stored one), chat json {id, title, created_at}
--          (null when the key's chat has been deleted since)
-- uses: chat_idempotency_keys_pkey; chats_pkey
WITH earlier AS (
    SELECT key_row.chat_id AS id, chat.title = $1 AS same_title, to_json(chat) AS chat
    FROM chat_idempotency_keys AS key_row
    LEFT JOIN LATERAL (
        SELECT id, title, created_at FROM chats WHERE id = key_row.chat_id
    ) AS chat ON true
    WHERE key_row.key = $2
),
created AS (
    INSERT INTO chats (title)
    SELECT $1
    WHERE NOT EXISTS (SELECT FROM earlier)
    RETURNING id, title, created_at
),
recorded AS (
    INSERT INTO chat_idempotency_keys (key, chat_id)
    SELECT $2, id FROM created
)
SELECT id, false AS replayed, true AS same_title, to_json(created) AS chat FROM created
UNION ALL
SELECT id, true, same_title, chat FROM earlier;
