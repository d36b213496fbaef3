-- name: allow_a_long_delete :one
-- serves: DELETE /chats/{chat_id}
-- Until the end of the transaction: no statement_timeout, so that deleting a
-- chat takes as long as its messages take (10,000,000 of them take minutes)
-- instead of being cancelled and rolled back every time, and a lock_timeout
-- of the usual statement timeout, so that waiting for the chat (a send or
-- another delete holding it) stays as bounded as any statement's.
-- params: $1 lock_timeout text (milliseconds)
-- returns: the two settings as set
-- uses: nothing
SELECT
    set_config('statement_timeout', '0', true) AS statement_timeout,
    set_config('lock_timeout', $1, true) AS lock_timeout;
