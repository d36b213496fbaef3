-- depends: 0003.notify-chat-events

-- A send notifies only when some service process has an event stream open
-- on its chat. Every notifying transaction takes one database-wide lock from
-- its commit until its commit record is flushed, so notifying commits cannot
-- share a WAL flush: with a NOTIFY on every send, sends to different chats
-- queued behind each other's fsync (bench/run.py, post_message: about a third
-- of the throughput). Now only sends to watched chats pay for that.
--
-- chat_listeners holds, per watched chat, the backend pid of each process's
-- LISTEN connection (chatsvc/events.py registers and unregisters through that
-- connection, with the statements in sql/events/). UNLOGGED: it is not worth
-- a WAL record, and after a crash it is emptied, when every listening
-- connection is gone too. Rows of a process that died are pruned whenever a
-- listener connects; until then they only cost notifications nobody reads.
--
-- No event is lost to a stream being opened while a send is under way.
-- Registration locks the chat's row as sends do (FOR NO KEY UPDATE), so the
-- two are ordered:
--   * a send that locked first commits before the registration does, and the
--     stream reads its start from the database after registering, so that
--     message is history, not a missed event;
--   * a send that locked second runs its trigger after the registration
--     committed, and the trigger's query (a volatile function's statement,
--     with a fresh snapshot in READ COMMITTED) sees it, so it notifies.
-- Writers that bypass the service must lock the chat's row the same way
-- (sql/messages/create_message.sql), as they already must to keep ids in
-- commit order.

CREATE UNLOGGED TABLE chat_listeners (
    chat_id bigint NOT NULL REFERENCES chats (id) ON DELETE CASCADE,
    -- pg_backend_pid() of a process's LISTEN connection
    listener_pid integer NOT NULL,
    -- The primary key serves the trigger's lookup by chat_id and the cascade.
    PRIMARY KEY (chat_id, listener_pid)
);

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
    message := (SELECT to_json(m)::text FROM (SELECT NEW.id, NEW.chat_id, NEW.text, NEW.created_at) AS m);
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
