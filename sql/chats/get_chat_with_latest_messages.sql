-- name: get_chat_with_latest_messages :val
-- A chat with its $2 most recent messages, listed oldest first, rendered as
-- the JSON the API answers with (column names are the JSON keys). Reads at
-- most $2 index entries, whatever the chat's size.
-- params: $1 chat_id bigint, $2 message_limit bigint (1 to 100)
-- returns: json {id, title, created_at, messages: [{id, chat_id, text, created_at}]},
--          or no row when the chat does not exist
-- uses: chats_pkey; messages_pkey (chat_id, id) scanned backward from the newest
SELECT to_json(chat)
FROM (
    SELECT
        c.id,
        c.title,
        c.created_at,
        coalesce(
            (
                SELECT array_to_json(array_agg(latest ORDER BY latest.id))
                FROM (
                    SELECT id, chat_id, text, created_at
                    FROM messages
                    WHERE chat_id = c.id
                    ORDER BY id DESC
                    LIMIT $2
                ) AS latest
            ),
            '[]'
        ) AS messages
    FROM chats AS c
    WHERE c.id = $1
) AS chat;
