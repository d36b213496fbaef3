"""Live events, in one place: SSE framing (frames.py), the NOTIFY payloads
(notifications.py), the process's LISTEN connection and its subscribers
(hub.py), and one stream's loop (stream.py). The route's handler,
chatsvc/handlers/chat_events.py, parses, subscribes and hands over."""
