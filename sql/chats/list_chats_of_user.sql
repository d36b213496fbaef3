-- name: list_chats_of_user :val
-- serves: GET /chats (a user)
-- One page of a user's chats (those they are a member of), newest first:
-- the $2 newest with id < $1, each with its newest message and the user's
-- read state, rendered as the JSON the API answers with. next_before is the
-- page's oldest id when an older chat of theirs exists, else null. Reads at
-- most $2 + 1 entries of chat_members_user_id_chat_id, backward from $1, and
-- per chat listed one chats_pkey lookup and a few index probes, however many
-- chats the user or the service holds and however many messages each holds
-- or the user has not read: keyset paging, never OFFSET; counters, never a count.
-- params: $1 before bigint (exclusive; the first page passes 9223372036854775807),
--         $2 chat_limit bigint (1 to 100), $3 user_id text
-- returns: json {chats: [{id, title, created_at, last_message, last_read_id, unread_count}],
--          next_before: id or null}
-- uses: chat_members_user_id_chat_id (user_id, chat_id) scanned backward from $1; chats_pkey;
--       messages_pkey (chat_id, id), the last entry per chat and the last up to
--       the read marker; messages_chat_id_author_id (the user's own messages above the marker);
--       message_changes_chat_id_seq (deletions above it)
-- Each chat is a scalar subquery (one chats_pkey lookup per chat listed),
-- and both scans order by (user_id, chat_id) as the index does, which the
-- primary key (chat_id, user_id) cannot: whatever the values, no plan joins
-- the user's entries with a scan of chats or of another user's entries.
WITH page AS (
    SELECT
        member.chat_id AS id,
        (
            SELECT to_json(chat)
            FROM (
                SELECT
                    c.id,
                    c.title,
                    c.created_at,
                    (
                        SELECT to_json(newest)
                        FROM (
                            SELECT id, chat_id, author, text, created_at, edited_at
                            FROM messages
                            WHERE chat_id = c.id
                            ORDER BY id DESC
                            LIMIT 1
                        ) AS newest
                    ) AS last_message,
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
    WHERE member.user_id = $3 AND member.chat_id < $1
    ORDER BY member.user_id DESC, member.chat_id DESC
    LIMIT $2
)
SELECT to_json(listing)
FROM (
    SELECT
        coalesce(
            (SELECT array_to_json(array_agg(page.chat ORDER BY page.id DESC)) FROM page),
            '[]'
        ) AS chats,
        -- The page's oldest id, if the user has an older chat (one index probe).
        (
            SELECT oldest.id
            FROM (SELECT min(page.id) AS id FROM page) AS oldest
            WHERE (
                SELECT older.chat_id
                FROM chat_members AS older
                WHERE older.user_id = $3 AND older.chat_id < oldest.id
                ORDER BY older.user_id DESC, older.chat_id DESC
                LIMIT 1
            ) IS NOT NULL
        ) AS next_before
) AS listing;
