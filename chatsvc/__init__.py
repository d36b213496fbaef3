"""chatsvc: a chat-history HTTP service on aiohttp, asyncpg and hand-written SQL."""
