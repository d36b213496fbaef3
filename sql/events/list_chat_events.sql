-- name: list_chat_events :many
-- serves: GET /chats/{chat_id}/events (resumed)
-- The backfill of a resumed event stream: the chat's events with
-- $2 < event id <= $3, in event id order, at most $4. Each message sent
-- since is a `message` under its own id, and each edit or deletion since (the
-- change log, migrations/0007) a `message_updated` or `message_deleted` under
-- the change's id, every message as it is now (the API's Message JSON, as
-- stored: migrations/0010). Applied to a client's view as of event $2, they give the chat as it
-- is: a message created and edited since arrives with its latest text (and
-- its edits again), an edit of a message deleted since is left out (its
-- deletion follows). Costs what the client missed: two index ranges that
-- start at $2, and one messages_pkey lookup per edit, however large the chat.
-- The stream sends events above $3 as they arrive live. Whether the caller
-- may read the chat was decided when the stream opened
-- (get_latest_event_id.sql); a member removed since has their stream ended.
-- params: $1 chat_id bigint, $2 after bigint (exclusive), $3 up_to bigint (inclusive), $4 event_limit bigint
-- returns: id bigint (the event id), kind text (message, message_updated or message_deleted),
--          message_id bigint, message text, JSON {id, chat_id, author, text, created_at, edited_at}
--          (null for message_deleted)
-- uses: messages_pkey (chat_id, id) scanned forward from $2; message_changes_pkey (chat_id, id)
--       scanned forward from $2; messages_pkey (chat_id, id) per edit
(
    SELECT id, 'message' AS kind, id AS message_id, rendered AS message
    FROM messages
    WHERE chat_id = $1 AND id > $2 AND id <= $3
    ORDER BY id
    LIMIT $4
)
UNION ALL
(
    SELECT
        change.id,
        CASE WHEN change.deleted THEN 'message_deleted' ELSE 'message_updated' END,
        change.message_id,
        edited.message
    FROM message_changes AS change
    LEFT JOIN LATERAL (
        SELECT rendered AS message
        FROM messages
        WHERE chat_id = change.chat_id AND id = change.message_id AND NOT change.deleted
    ) AS edited ON true
    WHERE change.chat_id = $1 AND change.id > $2 AND change.id <= $3
        AND (change.deleted OR edited.message IS NOT NULL)
    ORDER BY change.id
    LIMIT $4
)
ORDER BY id
LIMIT $4;
