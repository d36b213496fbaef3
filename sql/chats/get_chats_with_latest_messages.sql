-- name: get_chats_with_latest_messages :many
-- serves: GET /chats/{chat_id}
-- Chats, each with its most recent messages listed oldest first, rendered as
-- the JSON the API answers with (column names are the JSON keys), for the
-- callers that may read them: the server, or a member in a role of $4
-- (chatsvc/permissions.py). One call answers every GET /chats/{id} that
-- arrived while the service's connections were busy (chatsvc/batching.py);
-- under light load it is a single chat.
-- Each chat costs one chats_pkey lookup, one chat_members_pkey probe for a
-- user, and at most its limit of messages_pkey entries, whatever its size:
-- the correlated subquery runs per requested chat, so no plan can turn it
-- into a scan of chats.
-- params: $1 chat_ids bigint[], $2 message_limits bigint[] (each 1 to 100),
--         $3 caller_users text[] (null for the server; all three the same length),
--         $4 roles text[] (member roles allowed to read)
-- returns: chat_id bigint, message_limit bigint, caller_user text, chat json
--          {id, title, created_at, messages: [{id, chat_id, author, text, created_at}]}
--          or null when the chat does not exist or the caller may not read it
-- uses: chats_pkey; chat_members_pkey; messages_pkey (chat_id, id) scanned backward from the newest
SELECT
    wanted.chat_id,
    wanted.message_limit,
    wanted.caller_user,
    (
        SELECT to_json(chat)
        FROM (
            SELECT
                c.id,
                c.title,
                c.created_at,
                coalesce(
                    (
                        SELECT array_to_json(array_agg(latest ORDER BY latest.id))
                        FROM (
                            SELECT id, chat_id, author, text, created_at
                            FROM messages
                            WHERE chat_id = c.id
                            ORDER BY id DESC
                            LIMIT wanted.message_limit
                        ) AS latest
                    ),
                    '[]'
                ) AS messages
            FROM chats AS c
            WHERE c.id = wanted.chat_id
                AND (
                    wanted.caller_user IS NULL
                    OR (
                        SELECT member.role
                        FROM chat_members AS member
                        WHERE member.chat_id = c.id AND member.user_id = wanted.caller_user
                    ) = ANY ($4::text[])
                )
        ) AS chat
    ) AS chat
FROM unnest($1::bigint[], $2::bigint[], $3::text[]) AS wanted (chat_id, message_limit, caller_user);
