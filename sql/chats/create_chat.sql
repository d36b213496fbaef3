-- name: create_chat :one
-- serves: POST /chats
-- Creates a chat and renders it as the JSON the API answers with
-- (the column names of the inner SELECT are the JSON keys).
-- params: $1 title text (trimmed, 1 to 200 code points)
-- returns: id bigint, chat json {id, title, created_at}
-- uses: chats_pkey
INSERT INTO chats (title)
VALUES ($1)
RETURNING
    id,
    (SELECT to_json(chat) FROM (SELECT id, title, created_at) AS chat) AS chat;
