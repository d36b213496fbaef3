-- name: put_member :one
-- serves: PUT /chats/{chat_id}/members/{user}
-- Adds a user to a chat in a role, or sets the role of a member, when the
-- caller may manage the chat's members: the server, or a member in a role
-- of $5 (chatsvc/permissions.py). The chat's row is share-locked, so a chat
-- being deleted yields nothing (-> 404) instead of a foreign key error, and
-- so that no send or activity flush changes it until this commits: a new
-- member's copy of the chat's activity (migrations/0008) is the chat's, as
-- sql/chats/flush_activity.sql requires.
-- params: $1 chat_id bigint, $2 user_id text (1 to 255 visible ASCII characters),
--         $3 role text ('owner' or 'member'), $4 caller_user text (null for the server),
--         $5 roles text[] (member roles allowed to manage members)
-- returns: caller_role text (the caller's role in the chat; null when not a
--          member), member json {user, role, joined_at} (null when nothing was
--          done: no such chat, or not allowed), added bool (true when the user
--          was not a member before) -> 201, 200, 404 or 403
-- uses: chats_pkey; chat_members_pkey
WITH chat AS (
    SELECT id, activity
    FROM chats
    WHERE id = $1
    FOR SHARE
),
caller AS (
    SELECT role
    FROM chat_members
    WHERE chat_id = $1 AND user_id = $4
),
member AS (
    INSERT INTO chat_members (chat_id, user_id, role, activity)
    SELECT id, $2, $3, activity
    FROM chat
    WHERE $4::text IS NULL OR (SELECT role FROM caller) = ANY ($5::text[])
    ON CONFLICT (chat_id, user_id) DO UPDATE SET role = excluded.role
    -- xmax is 0 only in a row version this statement inserted
    RETURNING user_id AS "user", role, joined_at, xmax = 0 AS added
)
SELECT
    (SELECT role FROM caller) AS caller_role,
    (SELECT to_json(shown) FROM (SELECT "user", role, joined_at FROM member) AS shown) AS member,
    (SELECT added FROM member) AS added;
