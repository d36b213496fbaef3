-- depends: 0005.members-and-authors

-- The per-user write limit (contract v3, Limits): CHATSVC_USER_WRITE_RATE
-- writes per second sustained, bursts of CHATSVC_USER_WRITE_BURST, across
-- every service process that shares this database. Every write by a user is
-- charged here before its handler runs (chatsvc/app.py, chatsvc/limits.py,
-- sql/limits/take_user_writes.sql); the server is not limited.
--
-- One token bucket per user, kept as one timestamp: full_at, the moment the
-- bucket holds `burst` tokens again. At time t it holds
-- burst - (full_at - t) * rate tokens (burst once full_at has passed); a write
-- takes one token, moving full_at 1/rate later. This is the generic cell rate
-- algorithm, the token bucket without a refill step: no row needs updating
-- while nobody writes, and "full again" is a comparison with the clock.
--
-- A user with no row has a full bucket, so a row whose full_at has passed says
-- nothing a missing row would not: those are deleted hourly, in batches
-- (sql/limits/purge_full_user_write_buckets.sql), and the table holds about
-- one row per user who wrote in the last hour.
--
-- UNLOGGED: a charge is not worth a WAL record. After a crash PostgreSQL
-- empties the table, which refills every bucket: at worst each user gets one
-- more burst, once. Not copied to standbys either, so after a failover the
-- buckets start full as well.

CREATE UNLOGGED TABLE user_write_buckets (
    -- Bytewise ("C"): the purge walks the primary key in order, in batches.
    user_id  text COLLATE "C" NOT NULL,
    -- When the user's bucket is full again.
    full_at  timestamptz NOT NULL,
    -- How many writes the latest statement that charged the user took (of
    -- those it asked for). RETURNING sees only the row as the charge left it,
    -- so this is how the statement tells its caller; PostgreSQL 18's
    -- RETURNING OLD could spare it, but 16 has none.
    granted  integer NOT NULL,
    -- The arbiter of concurrent charges: one row per user, and its row lock
    -- orders that user's charges. No index on full_at on purpose: every
    -- charge changes it, and unindexed it is updated in place (HOT).
    CONSTRAINT user_write_buckets_pkey PRIMARY KEY (user_id),
    -- Mirrors the API rule for user ids: 1 to 255 visible ASCII characters.
    -- Checked at every charge (an update checks it again), so not as
    -- '^[!-~]{1,255}$': PostgreSQL's regex engine expands the bounded repeat,
    -- and that pattern cost about 0.1 ms per charge (a DO loop of 30,000
    -- charges: 4.7 s against 1.6 s without the check); this one costs no
    -- more than the noise.
    CONSTRAINT user_write_buckets_user_id_format
        CHECK (user_id ~ '^[!-~]+$' AND octet_length(user_id) <= 255)
);
