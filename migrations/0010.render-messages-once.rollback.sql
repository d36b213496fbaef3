-- Back to 0009: every answer renders its messages.
-- Live events render their own again (the functions of migrations/0007).
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

CREATE OR REPLACE FUNCTION notify_message_changed() RETURNS trigger
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

ALTER TABLE messages DROP COLUMN rendered;
DROP FUNCTION message_json(bigint, bigint, text, text, timestamptz, timestamptz);
