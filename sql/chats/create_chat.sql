-- name: create_chat :many
-- serves: POST /chats
-- Creates chats with their members, one per title of $1, and renders each as
-- the JSON the API answers with (the column names of the inner SELECT are the
-- JSON keys). One call creates every chat whose POST arrived while the
-- service's connections were busy (chatsvc/creates.py); under light load it
-- is a single chat. A user's chat lists the user as its first owner
-- (chatsvc/handlers/chats.py names them among its members); the server's has
-- exactly the members it lists. Each chat's id is drawn first, so that its
-- members can join it by its title's position.
-- params: $1 titles text[] (each trimmed, 1 to 200 code points),
--         $2 member_positions bigint[] (the position in $1, from 1, of the chat each member joins),
--         $3 member_users text[], $4 member_roles text[] (the three the same length; 0 to 101
--         members a chat, its users distinct)
-- returns: position bigint (the title's in $1), id bigint, chat json {id, title, created_at}
-- uses: chats_pkey; chat_members_pkey
WITH wanted AS MATERIALIZED (
    SELECT nextval(pg_get_serial_sequence('chats', 'id')) AS id, wanted.title, wanted.position
    FROM unnest($1::text[]) WITH ORDINALITY AS wanted (title, position)
),
chat AS (
    INSERT INTO chats (id, title)
    OVERRIDING SYSTEM VALUE
    SELECT id, title FROM wanted
    RETURNING id, title, created_at
),
members AS (
    INSERT INTO chat_members (chat_id, user_id, role)
    SELECT wanted.id, member.user_id, member.role
    FROM unnest($2::bigint[], $3::text[], $4::text[]) AS member (position, user_id, role)
    JOIN wanted ON wanted.position = member.position
)
SELECT wanted.position, chat.id, to_json(chat) AS chat
FROM chat
JOIN wanted ON wanted.id = chat.id;
