-- name: create_chat_once :one
-- serves: POST /chats (with an Idempotency-Key)
-- POST /chats/ with an Idempotency-Key: creates the chat with its members and
-- records the key in one statement or, when this caller recorded the key
-- already, creates nothing and returns what the key created. Keys belong to
-- their caller: a user id, or '' for the server. Two first requests racing
-- with one key: the second one's key insert waits for the first, then fails
-- on chat_idempotency_keys_pkey and its chat is rolled back with it; the
-- caller runs the statement again and now finds the key (chatsvc/idempotency.py).
-- params: $1 title text (trimmed, 1 to 200 code points),
--         $2 member_users text[], $3 member_roles text[] (as in create_chat.sql),
--         $4 caller text (user id, or '' for the server), $5 key text (1 to 255 visible ASCII characters),
--         $6 fingerprint text (digest of the request as validated)
-- returns: id bigint (the chat's), replayed bool, same_body bool (the retry's
--          body equals the first one's; for keys recorded without a fingerprint,
--          its title equals the stored one), chat json {id, title, created_at}
--          (null when the key's chat has been deleted since)
-- uses: chat_idempotency_keys_pkey (caller, key); chats_pkey; chat_members_pkey
WITH earlier AS (
    SELECT
        key_row.chat_id AS id,
        coalesce(key_row.fingerprint = $6, chat.title = $1) AS same_body,
        to_json(chat) AS chat
    FROM chat_idempotency_keys AS key_row
    LEFT JOIN LATERAL (
        SELECT id, title, created_at FROM chats WHERE id = key_row.chat_id
    ) AS chat ON true
    WHERE key_row.caller = $4 AND key_row.key = $5
),
-- Listed from the start, as in create_chat.sql, which says why.
mark AS MATERIALIZED (
    SELECT nextval(pg_get_serial_sequence('messages', 'id')) AS mark
    WHERE NOT EXISTS (SELECT FROM earlier)
),
created AS (
    INSERT INTO chats (title, created_mark, listed_activity)
    SELECT $1, mark, mark FROM mark
    RETURNING id, title, created_at
),
members AS (
    INSERT INTO chat_members (chat_id, user_id, role, activity)
    SELECT created.id, member.user_id, member.role, mark.mark
    FROM created, mark, unnest($2::text[], $3::text[]) AS member (user_id, role)
),
recorded AS (
    INSERT INTO chat_idempotency_keys (caller, key, chat_id, fingerprint)
    SELECT $4, $5, id, $6 FROM created
)
SELECT id, false AS replayed, true AS same_body, to_json(created) AS chat FROM created
UNION ALL
SELECT id, true, same_body, chat FROM earlier;
