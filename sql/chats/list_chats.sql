-- name: list_chats :val
-- serves: GET /chats (the server)
-- The server's listing: one page of every chat, newest first, the $2 newest
-- chats with id < $1, each with its newest message, rendered as the JSON the
-- API answers with. next_before is the page's oldest id when an older chat
-- exists, else null. Reads at most $2 + 1 chats_pkey entries however deep
-- the page lies (keyset paging, never OFFSET), and one messages_pkey entry
-- per chat listed, however many messages it holds.
-- params: $1 before bigint (exclusive; the first page passes 9223372036854775807), $2 chat_limit bigint (1 to 100)
-- returns: json {chats: [{id, title, created_at, last_message}], next_before: id or null}
-- uses: chats_pkey scanned backward from $1; messages_pkey (chat_id, id), the last entry per chat
WITH page AS (
    SELECT
        c.id,
        c.title,
        c.created_at,
        -- its stored rendering (migrations/0010), cast to json to nest in the chat's
        (SELECT rendered::json FROM messages WHERE chat_id = c.id ORDER BY id DESC LIMIT 1) AS last_message
    FROM chats AS c
    WHERE c.id < $1
    ORDER BY c.id DESC
    LIMIT $2
)
SELECT to_json(listing)
FROM (
    SELECT
        coalesce(
            (SELECT array_to_json(array_agg(page ORDER BY page.id DESC)) FROM page),
            '[]'
        ) AS chats,
        -- The page's oldest id, unless it is the oldest chat of all (one index probe).
        (
            SELECT oldest.id
            FROM (SELECT min(page.id) AS id FROM page) AS oldest
            WHERE oldest.id > (SELECT min(id) FROM chats)
        ) AS next_before
) AS listing;
