-- name: mark_read :one
-- serves: PUT /chats/{chat_id}/read
-- Moves a member's read marker forward to $3 (never back: the larger of the
-- two stays), when the member's role is one of $4 (chatsvc/permissions.py).
-- The server has no marker; chatsvc/handlers/read_state.py answers it. Racing
-- marks of one member wait for each other on the row, and each keeps the
-- larger value it finds.
-- params: $1 chat_id bigint, $2 user_id text, $3 message_id bigint (0 or more), $4 roles text[]
--         (member roles allowed to mark read)
-- returns: caller_role text (null when not a member), state json {chat_id, last_read_id}
--          (null when nothing was marked) -> 200, 404 or 403
-- uses: chat_members_pkey
WITH caller AS (
    SELECT role
    FROM chat_members
    WHERE chat_id = $1 AND user_id = $2
),
marked AS (
    UPDATE chat_members
    SET last_read_id = greatest(last_read_id, $3)
    WHERE chat_id = $1 AND user_id = $2 AND role = ANY ($4::text[])
    RETURNING chat_id, last_read_id
)
SELECT
    (SELECT role FROM caller) AS caller_role,
    (SELECT to_json(marked) FROM marked) AS state;
