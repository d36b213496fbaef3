-- name: list_messages_after :val
-- serves: GET /chats/{chat_id}/messages (?after=)
-- One page of a chat's history going forward: the $3 oldest messages with
-- id > $2, listed oldest first, and whether newer ones exist, rendered as the
-- JSON the API answers with, for a caller who may read the chat (the server,
-- or a member in a role of $5: chatsvc/permissions.py). Reads at most
-- $3 + 1 index entries however deep the page lies in the chat. Also the backfill of a resumed event stream.
-- params: $1 chat_id bigint, $2 after bigint (exclusive; 0 starts at the beginning), $3 message_limit bigint (1 to 100),
--         $4 caller_user text (null for the server), $5 roles text[] (member roles allowed to read)
-- returns: json {messages: [{id, chat_id, author, text, created_at, edited_at}], has_more: bool},
--          or no row when the chat does not exist or the caller may not read it
-- uses: chats_pkey; chat_members_pkey; messages_pkey (chat_id, id) scanned forward from $2
WITH page AS (
    SELECT id, chat_id, author, text, created_at, edited_at
    FROM messages
    WHERE chat_id = $1 AND id > $2
    ORDER BY id
    LIMIT $3
)
SELECT to_json(history)
FROM (
    SELECT
        coalesce((SELECT array_to_json(array_agg(page ORDER BY page.id)) FROM page), '[]') AS messages,
        -- Newer messages exist when the page's newest is not the chat's newest (one index probe).
        coalesce(
            (SELECT max(page.id) FROM page) < (SELECT max(id) FROM messages WHERE chat_id = $1),
            false
        ) AS has_more
    FROM chats
    WHERE id = $1
        AND (
            $4::text IS NULL
            OR (
                SELECT role FROM chat_members WHERE chat_id = $1 AND user_id = $4
            ) = ANY ($5::text[])
        )
) AS history;
