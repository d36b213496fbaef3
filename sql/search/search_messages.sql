-- name: search_messages :val
-- serves: GET /search/messages
-- One page of the messages holding every word of $1 (each word also as the
-- start of a longer one), newest first, below $3: in chat $2, or in every
-- chat the caller may read (the server: every chat; a user: the chats where
-- they are a member in a role of $6, chatsvc/permissions.py). Rendered as the
-- JSON the API answers with. A message's words and the query's are taken by
-- message_words() (migrations/0009) and matched in the 'simple' text search
-- configuration, named here as in the index, so that messages_search serves.
-- Run with a plan made for the values (sql/search/plan_for_the_values.sql):
-- the planner then weighs the words by the index's statistics. A rare word is
-- read from messages_search, its matches only, then sorted; a common one by
-- walking messages_id_for_search (or, in one chat, messages_pkey) backward from $3
-- (for a user, from the newest message of their chats), checking each
-- message, until the page is full.
-- params: $1 q text (1 to 200 characters, at least one word), $2 chat_id bigint (null: every chat
--         the caller may read), $3 before bigint (exclusive; the first page passes
--         9223372036854775807), $4 message_limit bigint (1 to 100),
--         $5 caller_user text (null for the server), $6 roles text[] (member roles allowed to read)
-- returns: json {messages: [{id, chat_id, author, text, created_at, edited_at}], next_before: bigint or null},
--          or null when $2 is given and is no chat the caller may read
-- uses: messages_search (GIN) or messages_id_for_search / messages_pkey backward; chat_members_user_id_chat_id
--       (a user's chats, and chats_pkey for their newest message); chats_pkey and chat_members_pkey (for $2)
WITH found AS (
    SELECT m.id, m.rendered
    FROM messages AS m
    WHERE to_tsvector('simple', message_words(m.text))
            -- The query's words, each a prefix, all required: 'word1':* & 'word2':*.
            -- Its words hold only letters and digits, nothing the tsquery syntax reads.
            @@ to_tsquery(
                'simple',
                nullif(array_to_string(tsvector_to_array(to_tsvector('simple', message_words($1))), ':* & '), '')
                    || ':*'
            )
        AND m.id < $3
        -- Across chats: a condition true of every message, stated so that
        -- messages_id_for_search may serve (migrations/0009). In one chat it is
        -- not stated (the plan for the values drops it), and messages_pkey
        -- serves: a walk of every chat's newest messages for one chat's would
        -- pass all the others' first.
        AND ($2::bigint IS NOT NULL OR char_length(m.text) > 0)
        AND ($2::bigint IS NULL OR m.chat_id = $2)
        AND (
            $5::text IS NULL
            OR m.chat_id IN (SELECT chat_id FROM chat_members WHERE user_id = $5 AND role = ANY ($6::text[]))
        )
        -- For a user, nothing above the newest message of their chats: a walk
        -- starts there, not at the messages others sent since.
        AND (
            $5::text IS NULL
            OR m.id <= (
                SELECT max((SELECT chat.last_message_id FROM chats AS chat WHERE chat.id = mine.chat_id))
                FROM chat_members AS mine
                WHERE mine.user_id = $5 AND mine.role = ANY ($6::text[])
            )
        )
    ORDER BY m.id DESC
    LIMIT $4::bigint + 1
)
SELECT CASE
    WHEN $2::bigint IS NOT NULL AND NOT EXISTS (
        SELECT FROM chats
        WHERE id = $2
            AND (
                $5::text IS NULL
                OR (SELECT role FROM chat_members WHERE chat_id = $2 AND user_id = $5) = ANY ($6::text[])
            )
    ) THEN NULL
    ELSE (
        SELECT to_json(page)
        FROM (
            SELECT
                coalesce(
                    -- The messages' stored renderings (migrations/0010), cast to json to nest.
                    (
                        SELECT ('[' || string_agg(shown.rendered, ',' ORDER BY shown.id DESC) || ']')::json
                        FROM (SELECT * FROM found ORDER BY id DESC LIMIT $4) AS shown
                    ),
                    '[]'
                ) AS messages,
                -- The page's oldest, when one more message matched below it.
                CASE WHEN (SELECT count(*) FROM found) > $4 THEN (
                    SELECT min(id) FROM (SELECT id FROM found ORDER BY id DESC LIMIT $4) AS shown
                ) END AS next_before
        ) AS page
    )
END;
