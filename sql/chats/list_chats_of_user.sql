-- name: list_chats_of_user :val
-- serves: GET /chats (a user)
-- One page of a user's chats (those they are a member of), newest first:
-- the $2 newest with id < $1, rendered as the JSON the API answers with.
-- next_before is the page's oldest id when an older chat of theirs exists,
-- else null. Reads at most $2 + 1 entries of chat_members_user_id_chat_id,
-- backward from $1, and one chats_pkey lookup per chat listed, however many
-- chats the user or the service holds: keyset paging, never OFFSET.
-- params: $1 before bigint (exclusive; the first page passes 9223372036854775807),
--         $2 chat_limit bigint (1 to 100), $3 user_id text
-- returns: json {chats: [{id, title, created_at}], next_before: id or null}
-- uses: chat_members_user_id_chat_id (user_id, chat_id) scanned backward from $1; chats_pkey
-- Each chat is a scalar subquery (one chats_pkey lookup per chat listed),
-- and both scans order by (user_id, chat_id) as the index does, which the
-- primary key (chat_id, user_id) cannot: whatever the values, no plan joins
-- the user's entries with a scan of chats or of another user's entries.
WITH page AS (
    SELECT
        member.chat_id AS id,
        (
            SELECT to_json(chat)
            FROM (SELECT id, title, created_at FROM chats WHERE id = member.chat_id) AS chat
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
