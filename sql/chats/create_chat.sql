-- name: create_chat :one
-- serves: POST /chats
-- Creates a chat with its members, and renders it as the JSON the API
-- answers with (the column names of the inner SELECT are the JSON keys).
-- A user's chat lists the user as its first owner (chatsvc/handlers/chats.py
-- puts them in $2 and $3); the server's has exactly the members it lists.
-- params: $1 title text (trimmed, 1 to 200 code points),
--         $2 member_users text[], $3 member_roles text[] (same length, 0 to 101; users distinct)
-- returns: id bigint, chat json {id, title, created_at}
-- uses: chats_pkey; chat_members_pkey
WITH chat AS (
    INSERT INTO chats (title)
    VALUES ($1)
    RETURNING id, title, created_at
),
members AS (
    INSERT INTO chat_members (chat_id, user_id, role)
    SELECT chat.id, member.user_id, member.role
    FROM chat, unnest($2::text[], $3::text[]) AS member (user_id, role)
)
SELECT id, to_json(chat) AS chat
FROM chat;
