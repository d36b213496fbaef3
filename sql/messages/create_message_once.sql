-- name: create_message_once :one
-- serves: POST /chats/{chat_id}/messages (with an Idempotency-Key)
-- POST /chats/{id}/messages/ with an Idempotency-Key: stores the message and
-- records the key (the caller's, in the chat) in one statement or, when this
-- caller recorded the key in this chat already, stores nothing and returns
-- the message the key stored. Keys belong to their caller: a user id, or ''
-- for the server. Only for a caller who may send there, as create_message.sql,
-- whose chat lock it takes too, so sends stay ordered and a deleted chat
-- yields no row (-> 404); its keys went with it. A message stored takes the
-- chat's next seq and moves the chat's counters, as in create_message.sql,
-- and a send to a followed chat commits without waiting for its flush, as
-- there (unflushed: sql/events/flush_commits.sql).
-- Two first requests racing with one key: the second one's key insert fails
-- on message_idempotency_keys_pkey and its message is rolled back with it;
-- the caller runs the statement again and now finds the key (chatsvc/idempotency.py).
-- params: $1 chat_id bigint, $2 text text (trimmed, 1 to 5000 code points),
--         $3 author text (null: from the application), $4 caller_user text (null for the server),
--         $5 roles text[] (member roles allowed to send), $6 key text (1 to 255 visible ASCII characters),
--         $7 fingerprint text (digest of the request as validated)
-- returns: id bigint (the message's), replayed bool, same_body bool (the
--          retry's body equals the first one's; for keys recorded without a
--          fingerprint, its text equals the stored one), message json
--          {id, chat_id, author, text, created_at, edited_at} (null when the key's
--          message has been deleted since: -> 404); no row when the chat does
--          not exist or the caller may not send there; unflushed bool (the commit
--          must be flushed: flush_commits.sql)
-- uses: chats_pkey; chat_members_pkey; message_idempotency_keys_pkey (chat_id, caller, key); messages_pkey;
--       chat_listeners_pkey
WITH chat AS (
    SELECT id, sent_count
    FROM chats
    WHERE id = $1
        AND (
            $4::text IS NULL
            OR (
                SELECT role FROM chat_members WHERE chat_id = $1 AND user_id = $4
            ) = ANY ($5::text[])
        )
    FOR NO KEY UPDATE
),
earlier AS (
    SELECT
        key_row.message_id AS id,
        coalesce(key_row.fingerprint = $7, message.text = $2) AS same_body,
        message.rendered AS message
    FROM chat
    JOIN message_idempotency_keys AS key_row ON key_row.chat_id = chat.id
    LEFT JOIN LATERAL (
        SELECT text, rendered
        FROM messages
        WHERE chat_id = key_row.chat_id AND id = key_row.message_id
    ) AS message ON true
    WHERE key_row.caller = coalesce($4, '') AND key_row.key = $6
),
created AS (
    INSERT INTO messages (chat_id, seq, author, text)
    SELECT chat.id, chat.sent_count + 1, $3, $2
    FROM chat
    WHERE NOT EXISTS (SELECT FROM earlier)
    RETURNING id, chat_id, rendered
),
counted AS (
    UPDATE chats
    SET sent_count = sent_count + 1, last_message_id = created.id, listed_activity = NULL
    FROM created
    WHERE chats.id = created.chat_id
),
recorded AS (
    INSERT INTO message_idempotency_keys (chat_id, caller, key, message_id, fingerprint)
    SELECT chat_id, coalesce($4, ''), $6, id, $7 FROM created
),
-- For this transaction only: commit without waiting for the WAL flush.
unflushed AS MATERIALIZED (
    SELECT set_config('synchronous_commit', 'off', true)
    FROM chat
    WHERE EXISTS (SELECT FROM chat_listeners WHERE chat_listeners.chat_id = chat.id)
)
SELECT id, false AS replayed, true AS same_body, rendered AS message,
    EXISTS (SELECT FROM unflushed) AS unflushed
FROM created
UNION ALL
SELECT id, true, same_body, message, false FROM earlier;
