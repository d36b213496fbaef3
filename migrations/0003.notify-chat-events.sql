-- depends: 0002.create-idempotency-keys

-- Live events for GET /chats/{id}/events. Each service process LISTENs on the
-- channel chatsvc_events with one connection (chatsvc/events.py) and fans
-- the events out to its subscribers.
--
-- NOTIFY is transactional: a listener hears of a message only once it is
-- committed, in commit order, which within a chat is id order (sends lock
-- their chat's row). A chat's delete waits for the sends in progress on it,
-- so its event follows every message sent before it.
--
-- Payloads (a NOTIFY payload holds at most 8000 bytes):
--   message <chat_id> <message_id> <part>/<parts> <piece of the Message JSON>
--   chat_deleted <chat_id>
-- The Message JSON travels whole, in pieces of at most 1900 characters (at
-- most 4 bytes each in UTF-8), rather than as an id for listeners to fetch:
-- a chat deleted right after a send takes the message with it, and
-- subscribers must still receive that message before chat_deleted.

CREATE FUNCTION notify_message_created() RETURNS trigger
LANGUAGE plpgsql AS $$
DECLARE
    -- The same JSON as the API's Message (sql/messages/create_message.sql).
    message text := (
        SELECT to_json(m)::text FROM (SELECT NEW.id, NEW.chat_id, NEW.text, NEW.created_at) AS m
    );
    piece_length constant integer := 1900;
    parts integer := ceil(char_length(message)::numeric / piece_length);
BEGIN
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

CREATE TRIGGER messages_notify_created
    AFTER INSERT ON messages
    FOR EACH ROW EXECUTE FUNCTION notify_message_created();

CREATE FUNCTION notify_chat_deleted() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_notify('chatsvc_events', format('chat_deleted %s', OLD.id));
    RETURN NULL;
END;
$$;

CREATE TRIGGER chats_notify_deleted
    AFTER DELETE ON chats
    FOR EACH ROW EXECUTE FUNCTION notify_chat_deleted();
