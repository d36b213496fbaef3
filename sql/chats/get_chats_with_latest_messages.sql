-- name: get_chats_with_latest_messages :many
-- serves: GET /chats/{chat_id}
-- Chats, each with its most recent messages listed oldest first and its
-- newest message (for a user, also their read state), rendered as the JSON
-- the API answers with (column names are the JSON keys), for the callers that
-- may read them: the server, or a member in a role of $4
-- (chatsvc/permissions.py). One call answers every GET /chats/{id} that
-- arrived while the service's connections were busy (chatsvc/batching.py);
-- under light load it is a single chat.
-- Each chat costs one chats_pkey lookup, one chat_members_pkey probe for a
-- user, at most its limit of messages_pkey entries, and for a user the few
-- probes of the unread count (sql/chats/list_chats_of_user.sql), whatever
-- its size: the correlated subquery runs per requested chat, so no plan can
-- turn it into a scan of chats.
-- params: $1 chat_ids bigint[], $2 message_limits bigint[] (each 1 to 100),
--         $3 caller_users text[] (null for the server; all three the same length),
--         $4 roles text[] (member roles allowed to read)
-- returns: chat_id bigint, message_limit bigint, caller_user text, chat json
--          {id, title, created_at, messages: [{id, chat_id, author, text, created_at, edited_at}],
--          last_message} plus, for a user, {last_read_id, unread_count};
--          null when the chat does not exist or the caller may not read it
-- uses: chats_pkey; chat_members_pkey; messages_pkey (chat_id, id) scanned backward from the newest;
--       messages_chat_id_author_id; message_changes_chat_id_seq
SELECT
    wanted.chat_id,
    wanted.message_limit,
    wanted.caller_user,
    (
        SELECT
            CASE
                WHEN wanted.caller_user IS NULL THEN (
                    SELECT to_json(chat)
                    FROM (
                        SELECT c.id, c.title, c.created_at, latest.messages, latest.last_message
                    ) AS chat
                )
                ELSE (
                    SELECT to_json(chat)
                    FROM (
                        SELECT
                            c.id,
                            c.title,
                            c.created_at,
                            latest.messages,
                            latest.last_message,
                            member.last_read_id,
                            -- unread_count: the messages above the read marker that others
                            -- wrote, from counters (migrations/0007): those sent after the
                            -- newest message up to the marker (by seq), less those deleted
                            -- since and the member's own. No count of the chat's messages:
                            -- the same few index probes for 0 unread as for 1,000,000, and
                            -- fewer for a marker at 0 or a chat without deletions above it.
                            CASE
                                WHEN c.last_message_id IS NULL OR c.last_message_id <= member.last_read_id THEN 0
                                ELSE (
                                    SELECT least(
                                        1000,
                                        c.sent_count - read_up_to.seq
                                            - CASE WHEN c.last_deleted_seq <= read_up_to.seq THEN 0 ELSE (
                                                SELECT count(*)
                                                FROM message_changes AS gone
                                                WHERE gone.chat_id = c.id AND gone.deleted AND gone.seq > read_up_to.seq
                                            ) END
                                            - (
                                                SELECT count(*)
                                                FROM messages AS own
                                                WHERE own.chat_id = c.id AND own.author = member.user_id
                                                    AND own.id > member.last_read_id
                                            )
                                    )
                                    FROM (
                                        SELECT CASE WHEN member.last_read_id = 0 THEN 0 ELSE coalesce(
                                            (
                                                SELECT seen.seq
                                                FROM messages AS seen
                                                WHERE seen.chat_id = c.id AND seen.id <= member.last_read_id
                                                ORDER BY seen.id DESC
                                                LIMIT 1
                                            ),
                                            0
                                        ) END AS seq
                                        -- OFFSET 0: one probe, not one per use of read_up_to.seq
                                        OFFSET 0
                                    ) AS read_up_to
                                )
                            END AS unread_count
                    ) AS chat
                )
            END
        FROM chats AS c
        LEFT JOIN chat_members AS member ON member.chat_id = c.id AND member.user_id = wanted.caller_user
        -- The latest messages, from their stored renderings (migrations/0010): the
        -- array and its last element (last_message) are joined from them, and
        -- cast to json (a parse, far cheaper than rendering) to nest in the chat's.
        -- OFFSET 0 keeps it one subquery run once per chat, not copied into
        -- each place that uses it.
        CROSS JOIN LATERAL (
            SELECT coalesce(('[' || array_to_string(rendered.messages, ',') || ']')::json, '[]') AS messages,
                rendered.messages[array_upper(rendered.messages, 1)]::json AS last_message
            FROM (
                SELECT array_agg(newest.rendered ORDER BY newest.id) AS messages
                FROM (
                    SELECT id, rendered
                    FROM messages
                    WHERE chat_id = c.id
                    ORDER BY id DESC
                    LIMIT wanted.message_limit
                ) AS newest
            ) AS rendered
            OFFSET 0
        ) AS latest
        WHERE c.id = wanted.chat_id
            AND (wanted.caller_user IS NULL OR member.role = ANY ($4::text[]))
    ) AS chat
FROM unnest($1::bigint[], $2::bigint[], $3::text[]) AS wanted (chat_id, message_limit, caller_user);
