-- Back to 0008: no search.
DROP INDEX messages_id_for_search;
DROP INDEX messages_search;
DROP FUNCTION message_words(text);
DROP COLLATION chatsvc_words;
