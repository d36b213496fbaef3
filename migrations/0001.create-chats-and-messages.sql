-- Chats and their messages.
--
-- Ids come from identity sequences. Within a chat, message ids increase in
-- the order messages become visible because every send locks its chat's row
-- before it draws an id (sql/messages/create_message.sql).

CREATE TABLE chats (
    id          bigint      GENERATED ALWAYS AS IDENTITY,
    title       text        NOT NULL,
    created_at  timestamptz NOT NULL DEFAULT clock_timestamp(),
    CONSTRAINT chats_pkey PRIMARY KEY (id),
    -- Mirrors the API rule: 1 to 200 code points after trimming.
    CONSTRAINT chats_title_length CHECK (char_length(title) BETWEEN 1 AND 200)
);

CREATE TABLE messages (
    chat_id     bigint      NOT NULL,
    id          bigint      GENERATED ALWAYS AS IDENTITY,
    text        text        NOT NULL,
    -- clock_timestamp(), not now(): a send that waited for its chat's lock is
    -- stamped when it got the lock, so created_at follows id within a chat.
    created_at  timestamptz NOT NULL DEFAULT clock_timestamp(),
    -- Leads with chat_id, like every key on messages, so the table can later be
    -- sharded by chat. Serves "latest N of a chat" (backward scan from the
    -- chat's highest id), "message X of chat Y", and the cascade below.
    CONSTRAINT messages_pkey PRIMARY KEY (chat_id, id),
    -- Deleting a chat deletes its messages in the same transaction: a message
    -- never outlives its chat, and DELETE /chats/{id} is a single statement.
    CONSTRAINT messages_chat_id_fkey FOREIGN KEY (chat_id)
        REFERENCES chats (id) ON DELETE CASCADE,
    -- Mirrors the API rule: 1 to 5000 code points after trimming.
    CONSTRAINT messages_text_length CHECK (char_length(text) BETWEEN 1 AND 5000)
);
