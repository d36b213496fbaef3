-- name: plan_for_the_values :exec
-- serves: GET /search/messages
-- Until the end of the transaction, plans each statement for the values it is
-- given, not once for any (the service's sessions force generic plans,
-- chatsvc/db.py): how to find a word depends on how common the word is, which
-- the planner can weigh only with the word in hand (sql/search/search_messages.sql).
-- params: none
-- returns: nothing
-- uses: nothing
SET LOCAL plan_cache_mode = force_custom_plan;
