-- depends: 0001.create-chats-and-messages

-- Idempotency-Key records for POST /chats/ and POST /chats/{id}/messages/.
--
-- A key row is written in the same statement as what the request created, so
-- either both exist or neither does. The primary keys are the arbiters of
-- racing retries: a second insert of the same key fails with a unique
-- violation, its statement rolls back whole, and the service runs it again,
-- now finding the first request's key (chatsvc/queries.py).
--
-- The request body is not stored: chats and messages are never edited, so a
-- retry is compared with the stored title or text itself.

CREATE TABLE chat_idempotency_keys (
    key         text        NOT NULL,
    -- The chat the first request created. No foreign key on purpose: the key
    -- outlives its chat, so a retry after the chat was deleted finds the key
    -- and gets 404 instead of creating the chat a second time.
    chat_id     bigint      NOT NULL,
    created_at  timestamptz NOT NULL DEFAULT now(),
    -- Chat keys are global: one key names one chat, whoever sends it.
    CONSTRAINT chat_idempotency_keys_pkey PRIMARY KEY (key),
    -- Mirrors the API rule: 1 to 255 visible ASCII characters.
    CONSTRAINT chat_idempotency_keys_key_format CHECK (key ~ '^[!-~]{1,255}$')
);

-- Serves the purge of keys past their retention, oldest first
-- (sql/idempotency/purge_chat_idempotency_keys.sql).
CREATE INDEX chat_idempotency_keys_created_at ON chat_idempotency_keys (created_at);

CREATE TABLE message_idempotency_keys (
    chat_id     bigint      NOT NULL,
    key         text        NOT NULL,
    -- The message the first request stored, in chat_id.
    message_id  bigint      NOT NULL,
    created_at  timestamptz NOT NULL DEFAULT now(),
    -- Message keys are scoped to their chat. Serves the lookup of a retry
    -- (sql/messages/create_message_once.sql) and the cascade below.
    CONSTRAINT message_idempotency_keys_pkey PRIMARY KEY (chat_id, key),
    -- A chat's keys go with it: a retry then finds no chat and gets 404.
    CONSTRAINT message_idempotency_keys_chat_id_fkey FOREIGN KEY (chat_id)
        REFERENCES chats (id) ON DELETE CASCADE,
    -- Mirrors the API rule: 1 to 255 visible ASCII characters.
    CONSTRAINT message_idempotency_keys_key_format CHECK (key ~ '^[!-~]{1,255}$')
);

-- Serves the purge of keys past their retention, oldest first
-- (sql/idempotency/purge_message_idempotency_keys.sql).
CREATE INDEX message_idempotency_keys_created_at ON message_idempotency_keys (created_at);
