-- name: list_chats :val
-- serves: GET /chats (the server)
-- The server's listing: one page of every chat, newest first, the $2 newest
-- chats with id < $1, rendered as the JSON the API answers with.
-- next_before is the page's oldest id when an older chat exists, else null. Reads at most $2 + 1 index entries however
-- deep the page lies: keyset paging, never OFFSET.
-- params: $1 before bigint (exclusive; the first page passes 9223372036854775807), $2 chat_limit bigint (1 to 100)
-- returns: json {chats: [{id, title, created_at}], next_before: id or null}
-- uses: chats_pkey scanned backward from $1
WITH page AS (
    SELECT id, title, created_at
    FROM chats
    WHERE id < $1
    ORDER BY id DESC
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
