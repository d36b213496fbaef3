-- name: notify_listener_check :val
-- serves: chatsvc serve: the events listener, each time it connects
-- A notification on the events channel that the listener which just
-- connected must hear before it serves streams: proof that its LISTEN works
-- (one made through a transaction pooler hears nothing). Sent through the
-- pool, from another session, as the sends' triggers notify.
-- params: $1 token text (random, one per attempt to listen)
-- returns: void (pg_notify returns no value)
-- uses: nothing (the notification is sent at commit)
SELECT pg_notify('chatsvc_events', 'listener_check ' || $1);
