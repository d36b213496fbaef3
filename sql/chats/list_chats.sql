-- name: list_chats :many
-- serves: GET /chats (the server)
-- Pages of the server's listing, every chat newest first, one per wanted
-- (before, limit): the limit newest chats with id < before, each with its
-- newest message, rendered as the JSON the API answers with. next_before is
-- the page's oldest id when an older chat exists, else null. One call
-- answers every listing of the server that arrived while the service's
-- connections were busy (chatsvc/reads.py), as list_chats_of_user.sql does
-- a user's. Each page reads at most its limit + 1 chats_pkey entries however
-- deep it lies (keyset paging, never OFFSET), and one messages_pkey entry per
-- chat listed, however many messages it holds.
-- params: $1 befores bigint[] (exclusive; the first page passes 9223372036854775807),
--         $2 chat_limits bigint[] (each 1 to 100; both the same length)
-- returns: before bigint, chat_limit bigint,
--          listing json {chats: [{id, title, created_at, last_message}], next_before: id or null}
-- uses: chats_pkey scanned backward from before; messages_pkey (chat_id, id), the last entry per chat
SELECT
    wanted.before,
    wanted.chat_limit,
    (
        WITH page AS (
            SELECT
                c.id,
                c.title,
                c.created_at,
                -- its stored rendering (migrations/0010), cast to json to nest in the chat's
                (SELECT rendered::json FROM messages WHERE chat_id = c.id ORDER BY id DESC LIMIT 1) AS last_message
            FROM chats AS c
            WHERE c.id < wanted.before
            ORDER BY c.id DESC
            LIMIT wanted.chat_limit
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
        ) AS listing
    ) AS listing
FROM unnest($1::bigint[], $2::bigint[]) AS wanted (before, chat_limit);
