-- name: list_message_events :many
-- serves: GET /chats/{chat_id}/events (resumed)
-- The backfill of a resumed event stream: the chat's messages with
-- $2 < id <= $3, oldest first, at most $4, each rendered as the API's Message
-- JSON. The stream sends messages above $3 as they arrive live. Whether the
-- caller may read the chat was decided when the stream opened
-- (get_latest_message_id.sql); a member removed since has their stream ended.
-- params: $1 chat_id bigint, $2 after bigint (exclusive), $3 up_to bigint (inclusive), $4 message_limit bigint
-- returns: id bigint, message json {id, chat_id, author, text, created_at}
-- uses: messages_pkey (chat_id, id) scanned forward from $2
SELECT id, to_json(message) AS message
FROM (
    SELECT id, chat_id, author, text, created_at
    FROM messages
    WHERE chat_id = $1 AND id > $2 AND id <= $3
    ORDER BY id
    LIMIT $4
) AS message;
