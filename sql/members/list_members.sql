-- name: list_members :many
-- serves: GET /chats/{chat_id}/members
-- Pages of chats' members by user id, bytewise (user ids are COLLATE "C"),
-- one per wanted (chat, after, limit, caller): the limit first members with a
-- user id above after, rendered as the JSON the API answers with, for a
-- caller who may read the chat (the server, or a member in a role of $5:
-- chatsvc/permissions.py). next_after is the page's last user id when another
-- member follows, else null. Each page reads at most its limit + 1 index
-- entries: keyset paging. One call answers every such page that arrived while
-- the service's connections were busy (chatsvc/reads.py).
-- params: $1 chat_ids bigint[], $2 afters text[] ('' starts at the first member: no user id is empty),
--         $3 member_limits bigint[] (each 1 to 100), $4 caller_users text[] (null for the server;
--         all four the same length), $5 roles text[] (member roles allowed to read)
-- returns: chat_id bigint, after text, member_limit bigint, caller_user text,
--          page json {members: [{user, role, joined_at}], next_after: text or null},
--          null when the chat does not exist or the caller may not read it
-- uses: chats_pkey; chat_members_pkey (chat_id, user_id) scanned forward from after
SELECT
    wanted.chat_id,
    wanted.after,
    wanted.member_limit,
    wanted.caller_user,
    (
        SELECT to_json(listing)
        FROM (
            SELECT
                coalesce(array_to_json(rendered.members), '[]') AS members,
                -- The page's last user id, if another member follows (one index probe:
                -- the first entry past it).
                CASE WHEN EXISTS (
                    SELECT FROM chat_members AS following
                    WHERE following.chat_id = c.id AND following.user_id > rendered.last_user
                ) THEN rendered.last_user END AS next_after
            FROM chats AS c
            -- The page, each member rendered once. OFFSET 0 keeps it one subquery run once per page.
            CROSS JOIN LATERAL (
                SELECT array_agg(to_json(page) ORDER BY page."user") AS members, max(page."user") AS last_user
                FROM (
                    SELECT user_id AS "user", role, joined_at
                    FROM chat_members
                    WHERE chat_id = c.id AND user_id > wanted.after
                    ORDER BY user_id
                    LIMIT wanted.member_limit
                ) AS page
                OFFSET 0
            ) AS rendered
            WHERE c.id = wanted.chat_id
                AND (
                    wanted.caller_user IS NULL
                    OR (
                        SELECT role FROM chat_members WHERE chat_id = c.id AND user_id = wanted.caller_user
                    ) = ANY ($5::text[])
                )
        ) AS listing
    ) AS page
FROM unnest($1::bigint[], $2::text[], $3::bigint[], $4::text[])
    AS wanted (chat_id, after, member_limit, caller_user);
