-- name: create_chat :many
-- serves: POST /chats
-- Creates chats with their members, one per title of $1, and renders each as
-- the JSON the API answers with (the column names of the inner SELECT are the
-- JSON keys). One call creates every chat whose POST arrived while the
-- service's connections were busy (chatsvc/creates.py); under light load it
-- is a single chat. A user's chat lists the user as its first owner
-- (chatsvc/handlers/chats.py names them among its members); the server's has
-- exactly the members it lists. Each chat's id is drawn first, so that its
-- members can join it by its title's position, and its created_mark (its
-- activity until its first message) with it, so that it is created listed.
-- A user's create is first charged to the user's write limit, in this same
-- statement, as create_messages.sql charges sends (the upsert of
-- sql/limits/take_user_writes.sql, which says how it counts): a charge in a
-- statement of its own cost a round trip and a commit per batch. A user's
-- creates take the tokens there are in the order given; the rest come back
-- refused (-> 429) and create nothing.
-- params: $1 titles text[] (each trimmed, 1 to 200 code points),
--         $2 member_positions bigint[] (the position in $1, from 1, of the chat each member joins),
--         $3 member_users text[], $4 member_roles text[] (the three the same length; 0 to 101
--         members a chat, its users distinct),
--         $5 caller_users text[] (one per title: who creates it; null for the server, who is not charged),
--         $6 per_write interval (1 / CHATSVC_USER_WRITE_RATE seconds), $7 burst integer
-- returns: position bigint (the title's in $1), then id bigint and chat json
--          {id, title, created_at} for a chat created (retry_after null), or
--          retry_after interval for a create the write limit refused (until a
--          token is there; id and chat null)
-- uses: user_write_buckets_pkey (one probe and row lock per user); chats_pkey; chat_members_pkey
WITH clock AS MATERIALIZED (
    SELECT clock_timestamp() AS now
),
creating AS (
    SELECT title, caller_user, position,
        row_number() OVER (PARTITION BY caller_user ORDER BY position) AS nth_of_user
    FROM unnest($1::text[], $5::text[]) WITH ORDINALITY AS creating (title, caller_user, position)
),
wanted AS (
    SELECT caller_user AS user_id, count(*)::integer AS charges
    FROM creating
    WHERE caller_user IS NOT NULL
    GROUP BY caller_user
),
-- The charge: as in sql/limits/take_user_writes.sql, which says how it counts.
charged AS (
    INSERT INTO user_write_buckets AS bucket (user_id, full_at, granted)
    SELECT wanted.user_id, clock.now + least(wanted.charges, $7) * $6::interval, least(wanted.charges, $7)
    FROM wanted, clock
    ORDER BY wanted.user_id
    ON CONFLICT (user_id) DO UPDATE
    SET (full_at, granted) = (
        SELECT greatest(bucket.full_at, clock.now) + taken.tokens * $6::interval, taken.tokens
        FROM clock,
            LATERAL (
                SELECT greatest(0, least(
                    excluded.granted,
                    floor(
                        extract(epoch FROM clock.now + ($7::integer - 1) * $6::interval
                            - greatest(bucket.full_at, clock.now))
                        / extract(epoch FROM $6::interval)
                    )::integer + 1
                )) AS tokens
            ) AS taken
    )
    RETURNING user_id, full_at, granted
),
refused AS (
    SELECT creating.position, charged.full_at - ($7::integer - 1) * $6::interval - clock.now AS retry_after
    FROM creating
    JOIN charged ON charged.user_id = creating.caller_user
    CROSS JOIN clock
    WHERE creating.nth_of_user > charged.granted
),
new_chat AS MATERIALIZED (
    SELECT
        nextval(pg_get_serial_sequence('chats', 'id')) AS id,
        nextval(pg_get_serial_sequence('messages', 'id')) AS mark,
        title,
        position
    FROM creating
    WHERE position NOT IN (SELECT position FROM refused)
),
-- Listed from the start (migrations/0008): its activity is its created_mark,
-- which each member row copies here, so the activity flush never rewrites a
-- new chat's rows (it did, every chat and member, shortly after each create).
chat AS (
    INSERT INTO chats (id, title, created_mark, listed_activity)
    OVERRIDING SYSTEM VALUE
    SELECT id, title, mark, mark FROM new_chat
    RETURNING id, title, created_at
),
members AS (
    INSERT INTO chat_members (chat_id, user_id, role, activity)
    SELECT new_chat.id, member.user_id, member.role, new_chat.mark
    FROM unnest($2::bigint[], $3::text[], $4::text[]) AS member (position, user_id, role)
    JOIN new_chat ON new_chat.position = member.position
)
SELECT new_chat.position, chat.id, to_json(chat) AS chat, NULL::interval AS retry_after
FROM chat
JOIN new_chat ON new_chat.id = chat.id
UNION ALL
SELECT position, NULL, NULL, retry_after
FROM refused;
