-- depends: 0008.list-a-users-chats-by-activity

-- Contract v3, Search: GET /search/messages finds messages holding every word
-- of a query (sql/search/search_messages.sql), through an index.
--
-- Words are runs of letters and digits in any script, compared without case
-- (and with ё as е). PostgreSQL's own text search parser would keep e-mail
-- addresses, URLs, paths and numbers with dots as single tokens, and a
-- database created with the C locale (the embedded one) neither lowercases
-- Cyrillic nor tells its letters from punctuation. So a message's words are
-- taken first, by the rule above, under a collation that knows Unicode
-- whatever the database's locale; the 'simple' configuration then only splits
-- them at the spaces left between them and keeps each whole (no stemming, no
-- stop words: every word is found, in any language).
--
-- chatsvc_words: Unicode character classes and case. The builtin provider
-- (PostgreSQL 17+) depends on nothing outside PostgreSQL; before it, the C
-- library's C.UTF-8 locale (every glibc since 2.35, Debian's always), else
-- en_US.UTF-8. Whichever is chosen must lowercase Cyrillic, or this fails.
DO $$
BEGIN
    BEGIN
        CREATE COLLATION chatsvc_words (provider = builtin, locale = 'C.UTF-8');
    EXCEPTION WHEN OTHERS THEN
        BEGIN
            CREATE COLLATION chatsvc_words (provider = libc, locale = 'C.UTF-8');
        EXCEPTION WHEN OTHERS THEN
            CREATE COLLATION chatsvc_words (provider = libc, locale = 'en_US.UTF-8');
        END;
    END;
    IF lower('ЁЛКА Straße ÉTÉ' COLLATE chatsvc_words) <> 'ёлка straße été' THEN
        RAISE EXCEPTION 'collation chatsvc_words does not lowercase Unicode text';
    END IF;
END
$$;

-- A text's words, lowercased, one space between each two: what the index
-- holds and what a query is matched by. Immutable: it is part of the index.
CREATE FUNCTION message_words(text) RETURNS text
LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE
RETURN translate(lower(regexp_replace($1 COLLATE chatsvc_words, '[^[:alnum:]]+', ' ', 'g')), 'ё', 'е');

-- Every message's words. fastupdate off: each send puts its words straight
-- into the index. With GIN's pending list (the default) every send appends to
-- the list's one tail page, and now and then one send merges the whole list
-- into the index: measured back to back, that cost post_message 11% of its
-- throughput and 31% on its p99, against nothing measurable without it. Built
-- here while writes wait: on a large table, create it (and the next) with
-- CREATE INDEX CONCURRENTLY and the same definition first; IF NOT EXISTS then
-- keeps it.
CREATE INDEX IF NOT EXISTS messages_search ON messages USING gin (to_tsvector('simple', message_words(text)))
    WITH (fastupdate = off);

-- Every message by id, newest first across chats: a search for a common word
-- walks it backward, stopping once a page is full (messages_pkey orders by id
-- within one chat only). Its predicate holds for every message
-- (messages_text_length), but only sql/search/search_messages.sql states it,
-- so only the search can use it: a plain index on id tempts the planner, for
-- one chat's range of ids (a history page, a resume), into walking every
-- chat's messages of that range and dropping the others'.
CREATE INDEX IF NOT EXISTS messages_id_for_search ON messages (id) WHERE char_length(text) > 0;
