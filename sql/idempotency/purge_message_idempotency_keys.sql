-- name: purge_message_idempotency_keys :val
-- serves: chatsvc purge-keys; chatsvc serve, hourly
-- Deletes up to $2 message Idempotency-Keys recorded longer than $1 ago; the
-- caller repeats until fewer than $2 go. Small batches keep each transaction
-- short, and SKIP LOCKED steps over keys a request is using right now, so it
-- is safe to run while serving (chatsvc purge-keys, and hourly in serve).
-- The batch's rows are deleted by their ctid (locked, so it stays theirs): a
-- key is unique only with its caller, and matching on less would delete other
-- callers' keys of the same name that have not expired.
-- params: $1 retention interval, $2 batch_size bigint
-- returns: how many keys were deleted
-- uses: message_idempotency_keys_created_at (oldest first); a TID scan for the delete
WITH expired AS (
    SELECT ctid
    FROM message_idempotency_keys
    WHERE created_at < now() - $1::interval
    ORDER BY created_at
    LIMIT $2
    FOR UPDATE SKIP LOCKED
),
deleted AS (
    DELETE FROM message_idempotency_keys
    WHERE ctid = ANY (ARRAY(SELECT ctid FROM expired))
    RETURNING 1
)
SELECT count(*) FROM deleted;
