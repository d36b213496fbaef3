-- name: list_chats_by_activity :many
-- serves: GET /chats (?order=activity, the server)
-- Pages of the server's listing by activity, every chat most recently active
-- first, one per wanted (activity, chat_id, limit), each chat with its newest
-- message. One call answers every such listing that arrived while the
-- service's connections were busy (chatsvc/reads.py). A chat's activity
-- (chats.activity, migrations/0007) is its newest message's id, or a number
-- drawn from the same sequence when it was created: one ordering for chats
-- with and without messages, and no two chats tie. A page is the limit chats
-- below its cursor (activity, chat_id) in (activity, id) order; next_cursor
-- encodes the last one when a further chat exists (read as one more row),
-- else null. Each page reads at most its limit + 1 entries of
-- chats_activity_id however deep it lies, then one chats_pkey lookup and one
-- messages_pkey entry per chat listed.
-- params: $1 activities bigint[], $2 chat_ids bigint[]: the cursors, exclusive (the first page
--         passes 9223372036854775807 for both), $3 chat_limits bigint[] (each 1 to 100; all
--         three the same length)
-- returns: activity bigint, chat_id bigint, chat_limit bigint,
--          listing json {chats: [{id, title, created_at, last_message}], next_cursor: text or null}
-- uses: chats_activity_id (activity, id) scanned backward from the cursor; chats_pkey;
--       messages_pkey (chat_id, id), the last entry per chat
SELECT
    wanted.activity,
    wanted.chat_id,
    wanted.chat_limit,
    (
        WITH ranked AS (
            SELECT id, activity
            FROM chats
            WHERE (activity, id) < (wanted.activity, wanted.chat_id)
            ORDER BY activity DESC, id DESC
            LIMIT wanted.chat_limit + 1
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
            FROM (SELECT id, activity FROM ranked ORDER BY activity DESC, id DESC LIMIT wanted.chat_limit) AS top
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
                CASE WHEN (SELECT count(*) FROM ranked) > wanted.chat_limit THEN (
                    SELECT rtrim(translate(encode(int8send(last.activity) || int8send(last.id), 'base64'), '+/', '-_'), '=')
                    FROM (SELECT activity, id FROM page ORDER BY activity, id LIMIT 1) AS last
                ) END AS next_cursor
        ) AS listing
    ) AS listing
FROM unnest($1::bigint[], $2::bigint[], $3::bigint[]) AS wanted (activity, chat_id, chat_limit);
