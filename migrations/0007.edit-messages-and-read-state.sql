-- depends: 0006.limit-user-writes

-- Contract v3, Authors and edits and Read state: messages that are edited and
-- deleted, a change stream that a client resumes at the cost of what it
-- missed, read markers with unread counts, and chats listed by activity.
--
-- Event ids. Every change to a chat's messages has an id from the one
-- sequence that numbers messages (a send's event id is its message id), drawn
-- while the change holds the chat's row lock, as sends do: within a chat,
-- event ids increase in the order the changes commit. A message id and an
-- edit's or deletion's event id never coincide.
--
-- Writers that bypass the service must, like the statements in sql/messages/,
-- lock the chat's row first, number each message (seq) from chats.sent_count
-- and move the chat's counters (sent_count, last_message_id) in the same
-- transaction, and log each edit and deletion in message_changes; an insert
-- without a seq is refused (NOT NULL). A row trigger could number them, but
-- a bulk load into one chat would then update the chat's row once per
-- message in one transaction, which is quadratic (100,000 rows did not finish
-- in 5 minutes): number them in the statement, as tests/api.py's FILL_CHATS does.

-- When a message's text last changed (null: never edited). Nullable without a
-- default: adding it rewrites nothing.
ALTER TABLE messages ADD COLUMN edited_at timestamptz;

-- seq: the message's place among every message ever sent to its chat (1, 2,
-- ...), deleted ones included; chats.sent_count is the last one given. With
-- them an unread count is a subtraction, not a count of messages (see
-- sql/chats/list_chats_of_user.sql). Messages from before this migration are
-- numbered here, in one pass over the table.
ALTER TABLE messages ADD COLUMN seq bigint;
UPDATE messages
SET seq = numbered.seq
FROM (
    SELECT chat_id, id, row_number() OVER (PARTITION BY chat_id ORDER BY id) AS seq
    FROM messages
) AS numbered
WHERE messages.chat_id = numbered.chat_id AND messages.id = numbered.id;
ALTER TABLE messages ALTER COLUMN seq SET NOT NULL;

-- Serves unread counts: a member's own messages above their read marker, which
-- do not count (one range of this index per chat listed; none for the
-- messages of others, however many). Null authors (the application's
-- messages) are nobody's own.
CREATE INDEX messages_chat_id_author_id ON messages (chat_id, author, id) WHERE author IS NOT NULL;

-- Per chat: how many messages were ever sent to it (the last seq given), its
-- newest message, and the chat's place in GET /chats/?order=activity.
-- created_mark: a number from the messages' sequence drawn when the chat was
-- created, so that a chat without messages ranks by its creation among chats
-- ranked by their newest message. Chats from before this migration get 0:
-- those without messages rank after every other chat (by id among themselves).
-- last_deleted_seq: the highest seq of a message deleted from the chat (0:
-- none), so that an unread count skips looking for deletions above a marker
-- when there can be none.
ALTER TABLE chats
    ADD COLUMN sent_count bigint NOT NULL DEFAULT 0,
    ADD COLUMN last_message_id bigint,
    ADD COLUMN last_deleted_seq bigint NOT NULL DEFAULT 0,
    ADD COLUMN created_mark bigint NOT NULL DEFAULT 0;
ALTER TABLE chats ALTER COLUMN created_mark SET DEFAULT nextval(pg_get_serial_sequence('messages', 'id'));
UPDATE chats
SET sent_count = counted.sent_count, last_message_id = counted.last_message_id
FROM (
    SELECT chat_id, count(*) AS sent_count, max(id) AS last_message_id
    FROM messages
    GROUP BY chat_id
) AS counted
WHERE chats.id = counted.chat_id;
ALTER TABLE chats
    ADD COLUMN activity bigint NOT NULL GENERATED ALWAYS AS (coalesce(last_message_id, created_mark)) STORED;

-- Serves GET /chats/?order=activity for the server: chats by activity, newest
-- first, read backward from the cursor (sql/chats/list_chats_by_activity.sql).
CREATE INDEX chats_activity_id ON chats (activity, id);

-- A member's read marker: every message with an id up to it counts as read.
-- Only moves forward (sql/members/mark_read.sql). A constant default rewrites nothing.
ALTER TABLE chat_members ADD COLUMN last_read_id bigint NOT NULL DEFAULT 0;

-- The change log: one row per edit or deletion of a message, under its event
-- id. A resumed event stream reads it from the client's last event id on, so
-- catching up costs what the client missed, not what the chat holds
-- (sql/events/list_chat_events.sql). A deleted message keeps only this row:
-- its id and its seq, no text and no author, so that clients that were away
-- learn to drop it and unread counts stop counting it.
CREATE TABLE message_changes (
    chat_id     bigint  NOT NULL,
    -- The change's event id (messages' sequence).
    id          bigint  NOT NULL,
    message_id  bigint  NOT NULL,
    -- false: the text was edited; true: the message was deleted.
    deleted     boolean NOT NULL,
    -- A deleted message's seq (null for edits).
    seq         bigint,
    -- Serves the resume (a chat's changes after an event id, in id order) and the cascade.
    CONSTRAINT message_changes_pkey PRIMARY KEY (chat_id, id),
    -- A chat's log goes with it.
    CONSTRAINT message_changes_chat_id_fkey FOREIGN KEY (chat_id)
        REFERENCES chats (id) ON DELETE CASCADE,
    CONSTRAINT message_changes_deleted_seq CHECK ((seq IS NOT NULL) = deleted)
);

-- Serves unread counts: a chat's deleted messages above a seq, which no longer count.
CREATE INDEX message_changes_chat_id_seq ON message_changes (chat_id, seq) WHERE deleted;

-- Live events (chatsvc/live/): a message's JSON now carries edited_at, and
-- edits and deletions are announced, like sends, only for watched chats:
--   message_updated <chat_id> <event_id> <part>/<parts> <piece of the Message JSON>
--   message_deleted <chat_id> <event_id> <message_id>
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
        FROM (SELECT NEW.id, NEW.chat_id, NEW.author, NEW.text, NEW.created_at, NEW.edited_at) AS m
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

CREATE FUNCTION notify_message_changed() RETURNS trigger
LANGUAGE plpgsql AS $$
DECLARE
    message text;
    piece_length constant integer := 1900;
    parts integer;
BEGIN
    IF NOT EXISTS (SELECT FROM chat_listeners WHERE chat_id = NEW.chat_id) THEN
        RETURN NULL;
    END IF;
    IF NEW.deleted THEN
        PERFORM pg_notify(
            'chatsvc_events', format('message_deleted %s %s %s', NEW.chat_id, NEW.id, NEW.message_id)
        );
        RETURN NULL;
    END IF;
    -- The message as edited: this trigger runs after the statement that edited it.
    message := (
        SELECT to_json(m)::text
        FROM (
            SELECT id, chat_id, author, text, created_at, edited_at
            FROM messages
            WHERE chat_id = NEW.chat_id AND id = NEW.message_id
        ) AS m
    );
    IF message IS NULL THEN
        RETURN NULL;  -- deleted in the same transaction: its deletion is announced
    END IF;
    parts := ceil(char_length(message)::numeric / piece_length);
    FOR part IN 1 .. parts LOOP
        PERFORM pg_notify(
            'chatsvc_events',
            format(
                'message_updated %s %s %s/%s %s',
                NEW.chat_id, NEW.id, part, parts,
                substr(message, (part - 1) * piece_length + 1, piece_length)
            )
        );
    END LOOP;
    RETURN NULL;
END;
$$;

CREATE TRIGGER message_changes_notify
    AFTER INSERT ON message_changes
    FOR EACH ROW EXECUTE FUNCTION notify_message_changed();
