"""Live chat events: one LISTEN connection per process, fanned out to subscribers.

PostgreSQL announces every committed message, every deleted chat and every
removed member on CHANNEL (migrations/0003.notify-chat-events.sql,
0005.members-and-authors.sql), so a send through any service process reaches
the subscribers of every process, and a removed member's streams end on
every process. Each process holds
one listening connection, whatever its number of subscribers, and encodes
each event once for all of them.

Sends notify only for chats that some process watches: a process registers
its LISTEN connection for a chat when its first stream on that chat opens,
and unregisters when its last one closes
(migrations/0004.notify-only-watched-chats.sql says why, and why no event can
slip between a registration and a send).

A subscriber is never waited for: events are appended to its own bounded
backlog, and one that falls SUBSCRIBER_BACKLOG events behind is dropped with
a final comment (it resumes with Last-Event-ID), so it neither delays the
others nor grows memory. When the listening connection is lost, notifications
may have been missed, so every stream is ended the same way and new ones get
503 until the listener is back.

A LISTEN can succeed and hear nothing: through a transaction pooler
(PgBouncer's pool_mode = transaction) it lands on whichever server connection
was free, and notifications reach that one, not us. So each time it connects
the listener waits to hear a notification sent through the pool (another
session, as the sends' triggers notify) before it serves a stream; until it
does, new streams get 503 and /readyz says why.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import secrets
from collections import deque
from collections.abc import Awaitable, Callable, Iterator

import asyncpg

from chatsvc import queries
from chatsvc.db import UNAVAILABLE, Connect, DatabaseUnavailable
from chatsvc.live.frames import INTERRUPTED, SHUTTING_DOWN, TOO_SLOW, Event
from chatsvc.live.notifications import CHANNEL, Notifications, listener_check

log = logging.getLogger(__name__)

SUBSCRIBER_BACKLOG = 1000  # events a subscriber may fall behind before it is dropped
RECONNECT_DELAYS = (0.1, 0.5, 1.0, 2.0, 5.0)  # seconds between attempts to listen again
# How long a new listener waits to hear its self-check before it gives up and
# tries again; a notification takes milliseconds, even under load.
CHECK_TIMEOUT = 2.0
DEAF = (
    "the events listener did not hear its own notification: its LISTEN connection"
    " (CHATSVC_EVENTS_DATABASE_URL, else DATABASE_URL) must be direct or"
    " session-pooled, never through a transaction pooler"
)


CANNOT_REACH: tuple[type[BaseException], ...] = (*UNAVAILABLE, DatabaseUnavailable)


class ListenerDeaf(Exception):
    """The listener's LISTEN succeeded but its self-check never arrived."""


class TooManySubscribers(Exception):
    """The process already serves as many event streams as it may."""


class Subscription:
    """One stream's pending events, bounded; the stream's writer takes them in order."""

    def __init__(self, chat_id: int, user: str | None = None, backlog: int = SUBSCRIBER_BACKLOG) -> None:
        self.chat_id = chat_id
        self.user = user  # who follows (None: the server); a removed member's stream ends
        self._backlog = backlog
        self._pending: deque[Event] = deque()
        self._wakeup = asyncio.Event()
        self.ended = False

    def deliver(self, event: Event) -> None:
        if self.ended:
            return
        if len(self._pending) >= self._backlog:
            self.end(TOO_SLOW)  # after what it already has; it resumes from there
            return
        self._pending.append(event)
        self._wakeup.set()

    def end(self, final: Event) -> None:
        """Ends the stream after what is pending, with final as its last frame."""
        if self.ended:
            return
        self._pending.append(final)
        self.ended = True
        self._wakeup.set()

    async def next(self, idle_seconds: float) -> Event | None:
        """The next event, or None when none came within idle_seconds (time for a heartbeat)."""
        if not self._pending:
            self._wakeup.clear()
            try:
                async with asyncio.timeout(idle_seconds):
                    await self._wakeup.wait()
            except TimeoutError:
                return None
        return self._pending.popleft()


class EventHub:
    """The process's listening connection and the subscriptions it feeds, by chat."""

    def __init__(
        self,
        connect: Connect,
        send_check: Callable[[str], Awaitable[None]],
        backlog: int = SUBSCRIBER_BACKLOG,
        max_subscribers: int = 2000,
    ) -> None:
        self._connect = connect  # db.connector(settings, "chatsvc-events", settings.events_url)
        self._send_check = send_check  # queries.notify_listener_check through the pool
        self._backlog = backlog
        self._max_subscribers = max_subscribers
        self.subscriber_count = 0
        self._subscriptions: dict[int, set[Subscription]] = {}
        # Pieces of Message JSON too long for one notification, by message id.
        self._notifications = Notifications()
        self._listener: asyncpg.Connection | None = None  # while listening
        self.not_listening_because = "starting"  # why not, while not listening (for /readyz)
        self._check: tuple[str, asyncio.Future[None]] | None = None  # payload awaited, while checking
        self._task: asyncio.Task[None] | None = None
        # Chats this listener is registered for, changed only under the lock,
        # which also keeps the listener's statements one at a time.
        self._watched: set[int] = set()
        self._watching = asyncio.Lock()
        self._unwatching: set[asyncio.Task[None]] = set()

    @property
    def listening(self) -> bool:
        """Whether the LISTEN connection is up (new streams are refused while it is not)."""
        return self._listener is not None

    async def start(self) -> None:
        """Starts listening; waits for the first attempt, retries in the background."""
        first_attempt = asyncio.get_running_loop().create_future()
        self._task = asyncio.create_task(self._listen_forever(first_attempt), name="chatsvc-events")
        await first_attempt

    async def close(self) -> None:
        self.end_all(SHUTTING_DOWN)
        for task in list(self._unwatching):
            task.cancel()
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    def end_all(self, final: Event) -> None:
        for subscriptions in self._subscriptions.values():
            for subscription in subscriptions:
                subscription.end(final)
        self._subscriptions.clear()
        self._notifications.clear()

    @contextlib.contextmanager
    def subscribe(self, chat_id: int, user: str | None = None) -> Iterator[Subscription]:
        """A subscription to the chat's live events for the duration of the block.

        Subscribe before reading the chat's history: every message committed
        after that read is then delivered live, and the overlap is skipped by id.
        """
        if self._listener is None:
            raise DatabaseUnavailable("not listening for events")
        if self.subscriber_count >= self._max_subscribers:
            raise TooManySubscribers
        subscription = Subscription(chat_id, user, self._backlog)
        self._subscriptions.setdefault(chat_id, set()).add(subscription)
        self.subscriber_count += 1
        try:
            yield subscription
        finally:
            self.subscriber_count -= 1
            subscriptions = self._subscriptions.get(chat_id)
            if subscriptions is not None:
                subscriptions.discard(subscription)
                if not subscriptions:
                    del self._subscriptions[chat_id]
                    task = asyncio.create_task(self._unwatch(chat_id), name="chatsvc-unwatch")
                    self._unwatching.add(task)
                    task.add_done_callback(self._unwatching.discard)

    async def watch(self, chat_id: int) -> bool:
        """Makes sends to the chat notify this process; False when there is no such chat.

        Call inside subscribe(), before reading where the stream starts.
        """
        async with self._watching:
            listener = self._listener
            if listener is None:
                raise DatabaseUnavailable("not listening for events")
            if chat_id in self._watched:
                return True
            try:
                found = await queries.watch_chat(listener, chat_id)
            except UNAVAILABLE as exc:
                raise DatabaseUnavailable(type(exc).__name__) from exc
            if found:
                self._watched.add(chat_id)
            return found

    async def _unwatch(self, chat_id: int) -> None:
        """After the process's last stream on the chat closed, unless another opened since."""
        async with self._watching:
            listener = self._listener
            if chat_id in self._subscriptions or chat_id not in self._watched or listener is None:
                return
            self._watched.discard(chat_id)
            try:
                await queries.unwatch_chat(listener, chat_id)
            except UNAVAILABLE:  # the row costs only notifications; a listener connecting prunes it
                log.warning("could not unwatch chat %d", chat_id, exc_info=True)

    async def _listen_forever(self, first_attempt: asyncio.Future[None]) -> None:
        failures = 0
        while True:
            try:
                await self._listen_until_lost(first_attempt)
                failures = 0
                self.not_listening_because = "the events listener lost its connection; reconnecting"
            except ListenerDeaf:
                log.warning("%s; retrying", DEAF)
                self.not_listening_because = DEAF
                failures += 1
            except CANNOT_REACH as exc:
                log.warning("cannot listen for events (%s); retrying", type(exc).__name__)
                self.not_listening_because = (
                    f"the events listener cannot reach the database ({type(exc).__name__})"
                )
                failures += 1
            except Exception as exc:  # e.g. a database whose migrations are behind: retried the same way
                log.exception("cannot listen for events; retrying")
                self.not_listening_because = f"the events listener failed to start ({type(exc).__name__})"
                failures += 1
            finally:
                if not first_attempt.done():  # start() returns, listening or not
                    first_attempt.set_result(None)
            await asyncio.sleep(RECONNECT_DELAYS[min(failures, len(RECONNECT_DELAYS) - 1)])

    async def _listen_until_lost(self, first_attempt: asyncio.Future[None]) -> None:
        # The pool's session settings: its statements (sql/events/*watch*) wait at
        # most the statement timeout, e.g. for a chat's row lock.
        connection = await self._connect()
        lost = asyncio.Event()
        try:
            connection.add_termination_listener(lambda _: lost.set())
            await connection.add_listener(CHANNEL, self._on_notification)
            await self._hear_a_check()
            await queries.forget_gone_listeners(connection)
            self._listener = connection
            self.not_listening_because = ""
            if not first_attempt.done():
                first_attempt.set_result(None)
            await lost.wait()
            log.warning("the events listener lost its connection; reconnecting")
        finally:
            self._listener = None
            self._watched.clear()  # registered by this connection, which is going
            self.end_all(INTERRUPTED)  # notifications may be missed from here on
            connection.terminate()

    async def _hear_a_check(self) -> None:
        """Returns once the listener heard a notification sent through the pool; ListenerDeaf if it does not."""
        payload = listener_check(secrets.token_hex(8))
        heard = asyncio.get_running_loop().create_future()
        self._check = (payload, heard)
        try:
            await self._send_check(payload.rpartition(" ")[2])
            async with asyncio.timeout(CHECK_TIMEOUT):
                await heard
        except TimeoutError:
            raise ListenerDeaf from None
        finally:
            self._check = None

    def _on_notification(self, _connection: object, _pid: int, _channel: str, payload: str) -> None:
        if self._check is not None and payload == self._check[0]:
            if not self._check[1].done():
                self._check[1].set_result(None)
            return
        try:
            parsed = self._notifications.feed(payload, self._subscriptions.__contains__)
        except ValueError:  # not from our triggers: someone else NOTIFYing on the channel
            log.warning("ignored a malformed notification on %s: %.80r", CHANNEL, payload)
            return
        if parsed is None:
            return
        chat_id, event = parsed
        if event.user is not None:  # a member was removed: their streams on the chat end
            for subscription in self._subscriptions.get(chat_id, ()):
                if subscription.user == event.user:
                    subscription.end(event)
        elif event.final:  # the chat was deleted: its streams end, its registration went with it
            self._watched.discard(chat_id)
            for subscription in self._subscriptions.pop(chat_id, ()):
                subscription.end(event)
        else:
            for subscription in self._subscriptions.get(chat_id, ()):
                subscription.deliver(event)
