-- name: list_chats_of_user_by_activity :many
-- serves: GET /chats (?order=activity, a user)
-- Pages of users' chats by activity, one per wanted (cursor, limit, user):
-- one call answers every such listing that arrived while the service's
-- connections were busy (chatsvc/reads.py). Each page holds the user's chats
-- by activity, most recently active first, each
-- with its newest message and the user's read state, as
-- sql/chats/list_chats_by_activity.sql does for every chat. The listed chats
-- (migrations/0008) come in order from the user's copies of their activity,
-- read backward from the cursor, as far as the page needs; the unlisted ones
-- (the chats being written to now, those written to since the last flush,
-- and new ones: chatsvc/activity.py) from chats itself, each found in the
-- chats_unlisted index and checked for the user's membership. So the cost is
-- the page plus the chats unlisted at the time, a number the flush keeps
-- small whatever the user's chats or messages; the
-- JSON, with the probes of each chat's newest message and read state, is
-- built for the page's chats only.
-- params: $1 activities bigint[], $2 chat_ids bigint[]: the cursors, exclusive (the first page passes
--         9223372036854775807 for both), $3 chat_limits bigint[] (each 1 to 100), $4 user_ids text[]
--         (all four the same length)
-- returns: activity bigint, chat_id bigint, chat_limit bigint, user_id text,
--          listing json {chats: [{id, title, created_at, last_message, last_read_id, unread_count}],
--          next_cursor: text or null}
-- uses: chat_members_user_id_activity (the user's listed chats, backward from the cursor);
--       chats_unlisted with chat_members_pkey (the unlisted ones of the user's);
--       chats_pkey; chat_members_pkey;
--       messages_pkey (chat_id, id), the last entry per chat and the last up to the read marker;
--       messages_chat_id_author_id; message_changes_chat_id_seq
SELECT
    wanted.activity,
    wanted.chat_id,
    wanted.chat_limit,
    wanted.user_id,
    (
        WITH listed AS (
            -- A chat is listed in the same snapshot as its copies hold its activity:
            -- chats that are not are skipped here (and found below).
            SELECT membership.chat_id AS id, membership.activity
            FROM chat_members AS membership
            JOIN chats AS chat ON chat.id = membership.chat_id
            WHERE membership.user_id = wanted.user_id
                AND (membership.activity, membership.chat_id) < (wanted.activity, wanted.chat_id)
                AND chat.listed_activity IS NOT NULL
            ORDER BY membership.activity DESC, membership.chat_id DESC
            LIMIT wanted.chat_limit + 1
        ),
        unlisted AS (
            SELECT chat.id, chat.activity
            FROM chats AS chat
            WHERE chat.listed_activity IS NULL
                AND (chat.activity, chat.id) < (wanted.activity, wanted.chat_id)
                AND EXISTS (SELECT FROM chat_members AS membership WHERE membership.chat_id = chat.id AND membership.user_id = wanted.user_id)
        ),
        ranked AS (
            SELECT id, activity
            FROM (SELECT id, activity FROM listed UNION ALL SELECT id, activity FROM unlisted) AS both_kinds
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
                            (SELECT rendered::json FROM messages WHERE chat_id = c.id ORDER BY id DESC LIMIT 1) AS last_message,
                            member.last_read_id,
                            -- unread_count: the messages above the read marker that others
                            -- wrote, from counters (migrations/0007): those sent after the
                            -- newest message up to the marker (by seq), less those deleted
                            -- since and the member's own. No count of the chat's messages:
                            -- the same few index probes for 0 unread as for 1,000,000, and
                            -- fewer for a marker at 0 or a chat without deletions above it.
                            CASE
                                WHEN c.last_message_id IS NULL OR c.last_message_id <= member.last_read_id THEN 0
                                ELSE (
                                    SELECT least(
                                        1000,
                                        c.sent_count - read_up_to.seq
                                            - CASE WHEN c.last_deleted_seq <= read_up_to.seq THEN 0 ELSE (
                                                SELECT count(*)
                                                FROM message_changes AS gone
                                                WHERE gone.chat_id = c.id AND gone.deleted AND gone.seq > read_up_to.seq
                                            ) END
                                            - (
                                                SELECT count(*)
                                                FROM messages AS own
                                                WHERE own.chat_id = c.id AND own.author = member.user_id
                                                    AND own.id > member.last_read_id
                                            )
                                    )
                                    FROM (
                                        SELECT CASE WHEN member.last_read_id = 0 THEN 0 ELSE coalesce(
                                            (
                                                SELECT seen.seq
                                                FROM messages AS seen
                                                WHERE seen.chat_id = c.id AND seen.id <= member.last_read_id
                                                ORDER BY seen.id DESC
                                                LIMIT 1
                                            ),
                                            0
                                        ) END AS seq
                                        -- OFFSET 0: one probe, not one per use of read_up_to.seq
                                        OFFSET 0
                                    ) AS read_up_to
                                )
                            END AS unread_count
                        FROM chats AS c
                        JOIN chat_members AS member ON member.chat_id = c.id AND member.user_id = wanted.user_id
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
FROM unnest($1::bigint[], $2::bigint[], $3::bigint[], $4::text[]) AS wanted (activity, chat_id, chat_limit, user_id);
