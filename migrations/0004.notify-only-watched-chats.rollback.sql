-- Back to 0003's function: every send notifies.
CREATE OR REPLACE FUNCTION notify_message_created() RETURNS trigger
LANGUAGE plpgsql AS $$
DECLARE
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

DROP TABLE chat_listeners;
