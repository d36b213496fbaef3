-- depends: 0009.search-messages

-- Each message's JSON, as the API answers it, rendered once when the message
-- is written and kept beside it: history pages, chats with their latest
-- messages, listings, search, event streams and the writes' own answers read
-- it instead of rendering every message of every answer again. Rendering was
-- most of what a history page cost the database: 50 messages through
-- to_json took about 110 us of CPU a page, reading them 15 us; reading the
-- stored rendering and joining the texts, about 40 us (the same 32 pages of
-- 50 per statement, EXPLAIN ANALYZE, PostgreSQL 16). Zulip keeps its
-- messages' rendered_content for the same reason.
--
-- message_json() is the one definition of a message's JSON: {id, chat_id,
-- author, text, created_at, edited_at}, times in UTC as to_json() writes them
-- with TimeZone UTC (chatsvc/db.py sets it on every connection), so the
-- answers are byte for byte what they were. It is written out field by field
-- so that it depends on no session setting, which is what lets a generated
-- column use it: PostgreSQL computes `rendered` on every INSERT and UPDATE,
-- whoever writes (the service, a DBA, a bulk load), and an edit renders the
-- new text and edited_at with it. tests/test_rendered.py pins it to to_json().
--
-- Adding a stored generated column rewrites the table under an ACCESS
-- EXCLUSIVE lock: about 16 s per million messages on our 2-core benchmark
-- machine, during which nothing reads or writes messages. On a large
-- database apply it in a maintenance window. The table grows by the
-- rendering, about the text's size plus 150 bytes a message.
CREATE FUNCTION message_json(
    id bigint, chat_id bigint, author text, text text, created_at timestamptz, edited_at timestamptz
) RETURNS text
-- PL/pgSQL, not SQL: PostgreSQL inlines no IMMUTABLE SQL function whose body
-- calls a STABLE one (to_json() is, for the sake of other types), and a SQL
-- function it does not inline costs about 9 us a row written, this one 3 us
-- (an INSERT of 5,000 messages, EXPLAIN ANALYZE: 43 us a row without the column).
LANGUAGE plpgsql IMMUTABLE PARALLEL SAFE AS $$
BEGIN
    RETURN '{"id":' || id
        || ',"chat_id":' || chat_id
        || ',"author":' || coalesce(to_json(author)::text, 'null')
        || ',"text":' || to_json(text)::text
        -- to_json() of a timestamp without time zone has no offset: the UTC one is appended.
        || ',"created_at":' || rtrim(to_json(created_at AT TIME ZONE 'UTC')::text, '"') || '+00:00"'
        || ',"edited_at":'
        || coalesce(rtrim(to_json(edited_at AT TIME ZONE 'UTC')::text, '"') || '+00:00"', 'null')
        || '}';
END
$$;

ALTER TABLE messages
    ADD COLUMN rendered text NOT NULL
        GENERATED ALWAYS AS (message_json(id, chat_id, author, text, created_at, edited_at)) STORED;

-- Live events announce the stored rendering too (the functions of
-- migrations/0007, but for where the message's JSON comes from).
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
    message := NEW.rendered;  -- the API's Message, as stored
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
    message := (SELECT rendered FROM messages WHERE chat_id = NEW.chat_id AND id = NEW.message_id);
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
