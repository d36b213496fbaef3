-- name: list_chats_of_user :many
-- serves: GET /chats (a user)
-- Pages of users' chats (those they are a member of), newest first, one per
-- wanted (before, limit, user): the limit newest with id < before, each with
-- its newest message and the user's read state, rendered as the JSON the API
-- answers with. next_before is the page's oldest id when an older chat of
-- theirs exists, else null. One call answers every listing that arrived while
-- the service's connections were busy (chatsvc/reads.py). Each page reads at
-- most its limit + 1 entries of chat_members_user_id_chat_id, backward from before, and
-- per chat listed one chats_pkey lookup and a few index probes, however many
-- chats the user or the service holds and however many messages each holds
-- or the user has not read: keyset paging, never OFFSET; counters, never a count.
-- params: $1 befores bigint[] (exclusive; the first page passes 9223372036854775807),
--         $2 chat_limits bigint[] (each 1 to 100), $3 user_ids text[] (all three the same length)
-- returns: before bigint, chat_limit bigint, user_id text,
--          listing json {chats: [{id, title, created_at, last_message, last_read_id, unread_count}],
--          next_before: id or null}
-- uses: chat_members_user_id_chat_id (user_id, chat_id) scanned backward from before; chats_pkey;
--       messages_pkey (chat_id, id), the last entry per chat and the last up to
--       the read marker; messages_chat_id_author_id (the user's own messages above the marker);
--       message_changes_chat_id_seq (deletions above it)
-- Each chat is a scalar subquery (one chats_pkey lookup per chat listed),
-- and both scans order by (user_id, chat_id) as the index does, which the
-- primary key (chat_id, user_id) cannot: whatever the values, no plan joins
-- the user's entries with a scan of chats or of another user's entries.
SELECT
    wanted.before,
    wanted.chat_limit,
    wanted.user_id,
    (
        SELECT to_json(listing)
        FROM (
            SELECT
                coalesce(array_to_json(rendered.chats), '[]') AS chats,
                -- The page's oldest id, if the user has an older chat (one index probe).
                CASE WHEN (
                    SELECT older.chat_id
                    FROM chat_members AS older
                    WHERE older.user_id = wanted.user_id AND older.chat_id < rendered.oldest
                    ORDER BY older.user_id DESC, older.chat_id DESC
                    LIMIT 1
                ) IS NOT NULL THEN rendered.oldest END AS next_before
            -- The page, each chat rendered once. OFFSET 0 keeps it one subquery run once per page.
            FROM (
                SELECT array_agg(page.chat ORDER BY page.id DESC) AS chats, min(page.id) AS oldest
                FROM (
                    SELECT
                        member.chat_id AS id,
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
                        WHERE c.id = member.chat_id
                    ) AS chat
                        ) AS chat
                    FROM chat_members AS member
                    WHERE member.user_id = wanted.user_id AND member.chat_id < wanted.before
                    ORDER BY member.user_id DESC, member.chat_id DESC
                    LIMIT wanted.chat_limit
                ) AS page
                OFFSET 0
            ) AS rendered
        ) AS listing
    ) AS listing
FROM unnest($1::bigint[], $2::bigint[], $3::text[]) AS wanted (before, chat_limit, user_id);
