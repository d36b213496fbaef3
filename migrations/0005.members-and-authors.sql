-- depends: 0004.notify-only-watched-chats

-- Contract v3: members, authors, and Idempotency-Keys that belong to their caller.
--
-- User ids are compared bytewise (COLLATE "C"): the API orders members by
-- user id bytewise, and ids are visible ASCII, so no locale may reorder them.
-- Chats and messages from before this migration keep working for the server:
-- a chat without members, a message with a null author.

CREATE TABLE chat_members (
    chat_id     bigint      NOT NULL,
    user_id     text        COLLATE "C" NOT NULL,
    role        text        NOT NULL DEFAULT 'member',
    joined_at   timestamptz NOT NULL DEFAULT clock_timestamp(),
    -- Serves every permission check (is this user a member of this chat, and
    -- in which role), GET /chats/{id}/members (a chat's members by user id),
    -- and the cascade below.
    CONSTRAINT chat_members_pkey PRIMARY KEY (chat_id, user_id),
    -- A chat's members go with it: nobody is a member of a deleted chat.
    CONSTRAINT chat_members_chat_id_fkey FOREIGN KEY (chat_id)
        REFERENCES chats (id) ON DELETE CASCADE,
    -- Mirrors the API rules: the two roles, and user ids of 1 to 255 visible ASCII characters.
    CONSTRAINT chat_members_role CHECK (role IN ('owner', 'member')),
    CONSTRAINT chat_members_user_id_format CHECK (user_id ~ '^[!-~]{1,255}$')
);

-- Serves GET /chats/ for a user: their chats, newest first, read backward
-- from the cursor (sql/chats/list_chats_of_user.sql). Leads with the user.
CREATE INDEX chat_members_user_id_chat_id ON chat_members (user_id, chat_id);

-- A message's author: the user who sent it, or the one the server named;
-- null for a message from the application itself (and every message from
-- before this migration). Adding a nullable column without a default
-- rewrites nothing. The check is added NOT VALID: the rows already there
-- are all null, and new rows are checked, so no scan of messages is needed.
ALTER TABLE messages ADD COLUMN author text COLLATE "C";
ALTER TABLE messages ADD CONSTRAINT messages_author_format
    CHECK (author ~ '^[!-~]{1,255}$') NOT VALID;

-- Idempotency-Keys belong to their caller: the user's id, or '' for the
-- server (no user id is empty). Existing keys were all the server's. A
-- column with a constant default rewrites nothing; the primary keys are
-- rebuilt (these tables hold a day of keys at most).
-- fingerprint: a digest of the request body as validated (chatsvc/idempotency.py),
-- to tell a retry from another request under the same key now that a body
-- holds more than what the created row keeps (a chat's members). Null for
-- keys from before this migration, which compare the stored title or text.
ALTER TABLE chat_idempotency_keys
    ADD COLUMN caller text COLLATE "C" NOT NULL DEFAULT '',
    ADD COLUMN fingerprint text,
    DROP CONSTRAINT chat_idempotency_keys_pkey,
    ADD CONSTRAINT chat_idempotency_keys_pkey PRIMARY KEY (caller, key);

ALTER TABLE message_idempotency_keys
    ADD COLUMN caller text COLLATE "C" NOT NULL DEFAULT '',
    ADD COLUMN fingerprint text,
    DROP CONSTRAINT message_idempotency_keys_pkey,
    ADD CONSTRAINT message_idempotency_keys_pkey PRIMARY KEY (chat_id, caller, key);

-- Live events carry the author, and a member's removal ends that member's
-- event streams on the chat, on every process (chatsvc/live/hub.py):
--   member_removed <chat_id> <user_id>
-- Like sends, only for chats some process watches. Not for the members a
-- chat's deletion takes with it (the chat is gone by then): chat_deleted
-- ends every stream of the chat already.
CREATE OR REPLACE FUNCTION notify_message_created() RETURNS trigger
LANGUAGE plpgsql AS $$
DECLARE
    message text;
    piece_length constant integer := 1900;
    parts integer;
BEGIN
    IF NOT EXISTS (SELECT FROM chat_listeners WHERE chat_id = NEW.chat_id) THEN
        RETURN NULL;  -- nobody watches this chat: no NOTIFY, no lock at commit
    END IF;
    -- The same JSON as the API's Message (sql/messages/create_message.sql).
    message := (
        SELECT to_json(m)::text
        FROM (SELECT NEW.id, NEW.chat_id, NEW.author, NEW.text, NEW.created_at) AS m
    );
    parts := ceil(char_length(message)::numeric / piece_length);
    FOR part IN 1 .. parts LOOP
        PERFORM pg_notify(
            'chatsvc_events',
            format(
                'message %s %s %s/%s %s',
                NEW.chat_id, NEW.id, part, parts,
                substr(message, (part - 1) * piece_length + 1, piece_length)
            )
        );
    END LOOP;
    RETURN NULL;
END;
$$;

CREATE FUNCTION notify_member_removed() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    IF EXISTS (SELECT FROM chat_listeners WHERE chat_id = OLD.chat_id)
        AND EXISTS (SELECT FROM chats WHERE id = OLD.chat_id)
    THEN
        PERFORM pg_notify('chatsvc_events', format('member_removed %s %s', OLD.chat_id, OLD.user_id));
    END IF;
    RETURN NULL;
END;
$$;

CREATE TRIGGER chat_members_notify_removed
    AFTER DELETE ON chat_members
    FOR EACH ROW EXECUTE FUNCTION notify_member_removed();
