-- depends: 0007.edit-messages-and-read-state

-- GET /chats/?order=activity for a user, at the cost of its page, not of the
-- user's chats: each member row holds a copy of its chat's activity, with an
-- index ordering one user's chats by it. A send does not write those copies
-- (a chat of 1,000 members would cost 1,000 row writes per message): it marks
-- its chat unlisted, and a background flush (chatsvc/activity.py, every
-- ACTIVITY_FLUSH_INTERVAL) copies the activity of the unlisted chats that are
-- no longer among the most recently active to their members and marks them
-- listed, once for however many sends came in between. A listing takes listed
-- chats from the copies and unlisted ones, those few, from chats itself
-- (sql/chats/list_chats_of_user_by_activity.sql), so it is exact whenever the
-- flush last ran.

-- listed_activity: null while the chat is unlisted (some member's copy may be
-- stale); otherwise the chat's activity, which every member's copy holds. A
-- writer that moves a chat's activity (last_message_id) sets it to null in the
-- same UPDATE: the CHECK refuses the row otherwise. Nullable without a
-- default: adding it rewrites nothing, and every chat starts unlisted.
ALTER TABLE chats
    ADD COLUMN listed_activity bigint,
    ADD CONSTRAINT chats_listed_activity_is_activity CHECK (listed_activity = activity);

-- The unlisted chats by activity: what the flush copies (all but the most
-- recently active), and what a listing reads from chats. A send's UPDATE of
-- chats was not HOT already (chats_activity_id): it adds this index's entry
-- for the new row version.
CREATE INDEX chats_unlisted ON chats (activity, id) WHERE listed_activity IS NULL;

-- activity: the chat's activity as of the last flush, meaningful while the
-- chat is listed (a member added since is unlisted with it: sql/members/put_member.sql).
-- A constant default rewrites nothing.
ALTER TABLE chat_members ADD COLUMN activity bigint NOT NULL DEFAULT 0;

-- One user's chats by activity, read backward from a cursor.
CREATE INDEX chat_members_user_id_activity ON chat_members (user_id, activity, chat_id);
