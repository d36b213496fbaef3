DROP TABLE message_idempotency_keys;
DROP TABLE chat_idempotency_keys;
