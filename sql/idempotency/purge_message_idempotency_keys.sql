-- name: purge_message_idempotency_keys :val
-- serves: chatsvc purge-keys; chatsvc serve, hourly
-- Deletes up to $2 message Idempotency-Keys recorded longer than $1 ago; the
-- caller repeats until fewer than $2 go. Small batches keep each transaction
-- short, and SKIP LOCKED steps over keys a request is using right now, so it
-- is safe to run while serving (chatsvc purge-keys, and hourly in serve).
-- params: $1 retention interval, $2 batch_size bigint
-- returns: how many keys were deleted
-- uses: message_idempotency_keys_created_at; message_idempotency_keys_pkey
WITH expired AS (
    SELECT chat_id, key
    FROM message_idempotency_keys
    WHERE created_at < now() - $1::interval
    LIMIT $2
    FOR UPDATE SKIP LOCKED
),
deleted AS (
    DELETE FROM message_idempotency_keys
    WHERE (chat_id, key) IN (SELECT chat_id, key FROM expired)
    RETURNING 1
)
SELECT count(*) FROM deleted;
