-- name: delete_message :one
-- serves: DELETE /chats/{chat_id}/messages/{message_id}
-- Deletes a message, its text with it, when the caller may: the server, a
-- member in a role of $4 (any message), or the message's author in a role of
-- $5 (chatsvc/permissions.py). What stays is a row of the change log: the
-- message's id and seq under the deletion's event id, no text and no author,
-- so that resuming clients drop it and unread counts stop counting it
-- (migrations/0007). The event id is drawn under the chat's row lock, as for
-- sends and edits. When the chat's newest message goes, the chat's activity
-- falls back to the newest one left (or its creation); the chat's
-- last_deleted_seq records the highest seq deleted. Other messages keep
-- their ids, so history pages around it neither skip nor repeat one.
-- params: $1 chat_id bigint, $2 message_id bigint, $3 caller_user text (null for the server),
--         $4 any_roles text[] (member roles that may delete any message),
--         $5 own_roles text[] (member roles that may delete their own)
-- returns: caller_role text (null when not a member), found bool (the chat holds the
--          message; only computed when nothing was deleted), deleted bool -> 204, 404 or 403
-- uses: chats_pkey; chat_members_pkey; messages_pkey (one lookup, and one backward probe when
--       the newest message goes); message_changes_pkey
WITH chat AS (
    SELECT id, last_message_id
    FROM chats
    WHERE id = $1
    FOR NO KEY UPDATE
),
caller AS (
    SELECT role
    FROM chat_members
    WHERE chat_id = $1 AND user_id = $3
),
deleted AS (
    DELETE FROM messages
    USING chat
    WHERE messages.chat_id = chat.id AND messages.id = $2
        AND (
            $3::text IS NULL
            OR (SELECT role FROM caller) = ANY ($4::text[])
            OR (messages.author = $3 AND (SELECT role FROM caller) = ANY ($5::text[]))
        )
    RETURNING messages.chat_id, messages.id, messages.seq, chat.last_message_id
),
logged AS (
    INSERT INTO message_changes (chat_id, id, message_id, deleted, seq)
    SELECT chat_id, nextval(pg_get_serial_sequence('messages', 'id')), id, true, seq
    FROM deleted
),
moved AS (
    UPDATE chats
    SET
        last_message_id = CASE
            WHEN deleted.last_message_id = deleted.id THEN (
                SELECT earlier.id
                FROM messages AS earlier
                WHERE earlier.chat_id = deleted.chat_id AND earlier.id < deleted.id
                ORDER BY earlier.id DESC
                LIMIT 1
            )
            ELSE chats.last_message_id
        END,
        -- the chat's activity moves back with its newest message: unlisted (migrations/0008)
        listed_activity = CASE WHEN deleted.last_message_id = deleted.id THEN NULL ELSE chats.listed_activity END,
        last_deleted_seq = greatest(chats.last_deleted_seq, deleted.seq)
    FROM deleted
    WHERE chats.id = deleted.chat_id
)
SELECT
    (SELECT role FROM caller) AS caller_role,
    CASE
        WHEN EXISTS (SELECT FROM deleted) THEN true
        ELSE EXISTS (SELECT FROM messages WHERE chat_id = $1 AND id = $2)
    END AS found,
    EXISTS (SELECT FROM deleted) AS deleted;
