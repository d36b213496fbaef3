-- name: list_members :val
-- serves: GET /chats/{chat_id}/members
-- One page of a chat's members by user id, bytewise (user ids are COLLATE
-- "C"): the $3 first with a user id above $2, rendered as the JSON the API
-- answers with, for a caller who may read the chat (the server, or a member
-- in a role of $5: chatsvc/permissions.py). next_after is the page's last
-- user id when another member follows, else null. Reads at most $3 + 1
-- index entries: keyset paging.
-- params: $1 chat_id bigint, $2 after text ('' starts at the first member: no user id is empty),
--         $3 member_limit bigint (1 to 100), $4 caller_user text (null for the server),
--         $5 roles text[] (member roles allowed to read)
-- returns: json {members: [{user, role, joined_at}], next_after: text or null},
--          or no row when the chat does not exist or the caller may not read it
-- uses: chats_pkey; chat_members_pkey (chat_id, user_id) scanned forward from $2
WITH page AS (
    SELECT user_id AS "user", role, joined_at
    FROM chat_members
    WHERE chat_id = $1 AND user_id > $2
    ORDER BY user_id
    LIMIT $3
)
SELECT to_json(listing)
FROM (
    SELECT
        coalesce((SELECT array_to_json(array_agg(page ORDER BY page."user")) FROM page), '[]') AS members,
        -- The page's last user id, if another member follows (one index probe:
        -- the first entry past it).
        (
            SELECT last.user_id
            FROM (SELECT max(page."user") AS user_id FROM page) AS last
            WHERE (
                SELECT following.user_id
                FROM chat_members AS following
                WHERE following.chat_id = $1 AND following.user_id > last.user_id
                ORDER BY following.user_id
                LIMIT 1
            ) IS NOT NULL
        ) AS next_after
    FROM chats
    WHERE id = $1
        AND (
            $4::text IS NULL
            OR (
                SELECT role FROM chat_members WHERE chat_id = $1 AND user_id = $4
            ) = ANY ($5::text[])
        )
) AS listing;
