-- name: forget_gone_listeners :exec
-- serves: chatsvc serve: the events listener, each time it connects
-- Removes the registrations of LISTEN connections that no longer exist (a
-- process killed, a connection lost), and any of this session's from before
-- (a reused pid). Run by each LISTEN connection when it connects.
-- params: none
-- returns: nothing
-- uses: a scan of chat_listeners (one row per watched chat and process: small)
DELETE FROM chat_listeners
WHERE listener_pid = pg_backend_pid()
    OR listener_pid NOT IN (
        SELECT pid FROM pg_stat_activity WHERE application_name = 'chatsvc-events'
    );
