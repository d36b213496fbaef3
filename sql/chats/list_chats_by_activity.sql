-- name: list_chats_by_activity :val
-- serves: GET /chats (?order=activity, the server)
-- The server's listing by activity: one page of every chat, most recently
-- active first, each with its newest message. A chat's activity
-- (chats.activity, migrations/0007) is its newest message's id, or a number
-- drawn from the same sequence when it was created: one ordering for chats
-- with and without messages, and no two chats tie. The page is the $3 chats
-- below the cursor ($1, $2) in (activity, id) order; next_cursor encodes the
-- last one when a further chat exists (read as one more row), else null.
-- Reads at most $3 + 1 entries of chats_activity_id however deep the page
-- lies, then one chats_pkey lookup and one messages_pkey entry per chat listed.
-- params: $1 activity bigint, $2 chat_id bigint: the cursor, exclusive (the first page passes
--         9223372036854775807 for both), $3 chat_limit bigint (1 to 100)
-- returns: json {chats: [{id, title, created_at, last_message}], next_cursor: text or null}
-- uses: chats_activity_id (activity, id) scanned backward from ($1, $2); chats_pkey;
--       messages_pkey (chat_id, id), the last entry per chat
WITH ranked AS (
    SELECT id, activity
    FROM chats
    WHERE (activity, id) < ($1, $2)
    ORDER BY activity DESC, id DESC
    LIMIT $3::bigint + 1
),
page AS (
    SELECT
        top.id,
        top.activity,
        (
            SELECT to_json(chat)
            FROM (
                SELECT
                    c.id,
                    c.title,
                    c.created_at,
                    -- its stored rendering (migrations/0010), cast to json to nest in the chat's
                    (SELECT rendered::json FROM messages WHERE chat_id = c.id ORDER BY id DESC LIMIT 1) AS last_message
                FROM chats AS c
                WHERE c.id = top.id
            ) AS chat
        ) AS chat
    FROM (SELECT id, activity FROM ranked ORDER BY activity DESC, id DESC LIMIT $3) AS top
)
SELECT to_json(listing)
FROM (
    SELECT
        coalesce(
            (SELECT array_to_json(array_agg(page.chat ORDER BY page.activity DESC, page.id DESC)) FROM page),
            '[]'
        ) AS chats,
        -- The page's last chat as the opaque cursor of the next page, when one
        -- more chat follows: its activity and id as two big-endian bigints,
        -- base64url without padding (chatsvc/parsing.py reads it back).
        CASE WHEN (SELECT count(*) FROM ranked) > $3 THEN (
            SELECT rtrim(translate(encode(int8send(last.activity) || int8send(last.id), 'base64'), '+/', '-_'), '=')
            FROM (SELECT activity, id FROM page ORDER BY activity, id LIMIT 1) AS last
        ) END AS next_cursor
) AS listing;
