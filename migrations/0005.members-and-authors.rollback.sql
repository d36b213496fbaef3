-- Back to 0004: no members, no authors, keys global again. Refused while two
-- callers hold the same key (the old primary key cannot hold both): purge
-- keys first (chatsvc purge-keys) or wait out their 24 hours.
DROP TRIGGER chat_members_notify_removed ON chat_members;
DROP FUNCTION notify_member_removed();

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

ALTER TABLE message_idempotency_keys
    DROP CONSTRAINT message_idempotency_keys_pkey,
    ADD CONSTRAINT message_idempotency_keys_pkey PRIMARY KEY (chat_id, key),
    DROP COLUMN fingerprint,
    DROP COLUMN caller;

ALTER TABLE chat_idempotency_keys
    DROP CONSTRAINT chat_idempotency_keys_pkey,
    ADD CONSTRAINT chat_idempotency_keys_pkey PRIMARY KEY (key),
    DROP COLUMN fingerprint,
    DROP COLUMN caller;

ALTER TABLE messages DROP COLUMN author;

DROP TABLE chat_members;
