-- name: list_messages_after :many
-- serves: GET /chats/{chat_id}/messages (?after=)
-- Pages of chats' history going forward, one per wanted (chat, after, limit,
-- caller): the limit oldest messages with id > after, listed oldest first,
-- and whether newer ones exist, rendered as the JSON the API answers with,
-- for a caller who may read the chat (the server, or a member in a role of
-- $5: chatsvc/permissions.py). One call answers every such page that arrived
-- while the service's connections were busy (chatsvc/reads.py); under light
-- load it is a single page. Each page reads at most its limit + 1 index
-- entries however deep it lies in the chat: the correlated subquery runs per
-- wanted page.
-- params: $1 chat_ids bigint[], $2 afters bigint[] (exclusive; 0 starts at the beginning),
--         $3 message_limits bigint[] (each 1 to 100), $4 caller_users text[] (null for the server;
--         all four the same length), $5 roles text[] (member roles allowed to read)
-- returns: chat_id bigint, after bigint, message_limit bigint, caller_user text,
--          page text, JSON {messages: [{id, chat_id, author, text, created_at, edited_at}], has_more: bool},
--          null when the chat does not exist or the caller may not read it
-- uses: chats_pkey; chat_members_pkey; messages_pkey (chat_id, id) scanned forward from after
SELECT
    wanted.chat_id,
    wanted.after,
    wanted.message_limit,
    wanted.caller_user,
    (
        -- {"messages": [...], "has_more": bool}, joined from the messages' stored
        -- renderings (migrations/0010) rather than rendered again.
        SELECT '{"messages":[' || coalesce(rendered.messages, '') || '],"has_more":'
            -- Newer messages exist when the page's newest is not the chat's newest (one index probe).
            || coalesce(rendered.newest < (SELECT max(id) FROM messages WHERE chat_id = c.id), false)
            || '}'
        FROM chats AS c
        -- The page. OFFSET 0 keeps it one subquery run once per page.
        CROSS JOIN LATERAL (
            SELECT string_agg(page.rendered, ',' ORDER BY page.id) AS messages, max(page.id) AS newest
            FROM (
                SELECT id, rendered
                FROM messages
                WHERE chat_id = c.id AND id > wanted.after
                ORDER BY id
                LIMIT wanted.message_limit
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
    ) AS page
FROM unnest($1::bigint[], $2::bigint[], $3::bigint[], $4::text[])
    AS wanted (chat_id, after, message_limit, caller_user);
