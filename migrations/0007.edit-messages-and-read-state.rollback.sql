-- Back to 0006: no edits, no change log, no read markers, no activity order.
-- Deleted messages stay deleted; edited ones keep their current text.
DROP TRIGGER message_changes_notify ON message_changes;
DROP FUNCTION notify_message_changed();

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

DROP TABLE message_changes;
ALTER TABLE chat_members DROP COLUMN last_read_id;
DROP INDEX chats_activity_id;
ALTER TABLE chats
    DROP COLUMN activity,
    DROP COLUMN created_mark,
    DROP COLUMN last_message_id,
    DROP COLUMN last_deleted_seq,
    DROP COLUMN sent_count;
DROP INDEX messages_chat_id_author_id;
ALTER TABLE messages DROP COLUMN seq, DROP COLUMN edited_at;
