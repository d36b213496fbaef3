-- name: unwatch_chat :exec
-- serves: GET /chats/{chat_id}/events (its process's last stream on the chat closing)
-- The process's last event stream on a chat has closed: its sends stop
-- notifying this LISTEN connection (this session). Run on that connection.
-- params: $1 chat_id bigint
-- returns: nothing
-- uses: chat_listeners_pkey
DELETE FROM chat_listeners
WHERE chat_id = $1 AND listener_pid = pg_backend_pid();
