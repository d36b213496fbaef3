-- Back to 0010: words straight into the posting trees. Entries still in the
-- pending list stay readable until VACUUM merges them.
ALTER INDEX messages_search SET (fastupdate = off);
ALTER INDEX messages_search RESET (gin_pending_list_limit);
