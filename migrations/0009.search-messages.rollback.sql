-- Back to 0008: no search.
DROP INDEX messages_id;
DROP INDEX messages_search;
DROP FUNCTION message_words(text);
DROP COLLATION chatsvc_words;
