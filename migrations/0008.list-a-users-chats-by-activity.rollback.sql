-- Back to 0007: a user's listing by activity reads all of the user's chats.
DROP INDEX chat_members_user_id_activity;
ALTER TABLE chat_members DROP COLUMN activity;
DROP INDEX chats_unlisted;
ALTER TABLE chats
    DROP CONSTRAINT chats_listed_activity_is_activity,
    DROP COLUMN listed_activity;
