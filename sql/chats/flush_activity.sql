-- name: flush_activity :val
-- serves: chatsvc serve: the activity flush (chatsvc/activity.py), every ACTIVITY_FLUSH_INTERVAL
-- Lists up to $1 unlisted chats (migrations/0008), all but the $2 most
-- recently active ones: copies each one's activity to its member rows and
-- marks it listed, in one statement, so that a listing sees both or neither.
-- The $2 left are the chats being written to now: listing one would be undone
-- by its next send, a row write per member for nothing, while leaving it
-- costs each listing one probe of it. A chat whose row is locked (a send, a
-- deletion or a member being added, under way) is skipped, left for the next
-- flush: the flush never waits behind a writer, and a writer waits for one
-- short flush at most. A round that skips one lists fewer than $1, so the
-- flush stops there until its next interval (chatsvc/activity.py). A member added just before this statement locked the
-- chat, whom its snapshot does not see, holds the activity read under that
-- member's share lock (sql/members/put_member.sql): the one marked listed
-- here. The last UPDATE's recheck (the activity and sent_count read) is then
-- always true; it stays so that nothing is ever marked listed at an activity
-- that is not the chat's. One flush at a time across processes (the advisory
-- lock: two could leave copies of two different activities); a process that
-- does not get it lists nothing this round.
-- params: $1 chat_limit bigint (chats per round), $2 kept bigint (the most recently active
--         unlisted chats left unlisted)
-- returns: bigint, how many chats were marked listed (fewer than $1: no more to do now)
-- uses: chats_unlisted (by activity, newest first); chat_members_pkey (the members of each chat); chats_pkey
-- The round's chats are chosen first and locked after, by primary key. A
-- locking clause beside OFFSET would lock the rows OFFSET skips too: the $2
-- chats being written to, whose sends then waited for the flush. And every
-- later step finds its chats by primary key: statistics taken while few chats
-- were unlisted (the usual case) let the planner scan all of chats_unlisted
-- for them instead, and a backlog (thousands of new chats) then cost each
-- round all of it. Both made sends after a burst of creates wait and starve
-- (bench/compare.py --scenarios create_chat,post_message: post_message at 200
-- req/s, against 4,000 before the burst).
WITH candidate AS (
    SELECT id
    FROM chats
    WHERE listed_activity IS NULL AND (SELECT pg_try_advisory_xact_lock(hashtext('chatsvc flush_activity')))
    ORDER BY activity DESC, id DESC
    OFFSET $2
    LIMIT $1
),
-- No recheck of listed_activity: only the flush lists a chat, one flush at a time.
due AS (
    SELECT id, activity, sent_count
    FROM chats
    WHERE id = ANY (ARRAY(SELECT id FROM candidate))
    FOR NO KEY UPDATE SKIP LOCKED
),
copied AS (
    UPDATE chat_members AS member
    SET activity = due.activity
    FROM due
    WHERE member.chat_id = ANY (ARRAY(SELECT id FROM due))  -- each chat's members, by key
        AND member.chat_id = due.id AND member.activity <> due.activity
),
listed AS (
    UPDATE chats
    SET listed_activity = due.activity
    FROM due
    WHERE chats.id = ANY (ARRAY(SELECT id FROM due))  -- each chat, by key
        AND chats.id = due.id AND chats.activity = due.activity AND chats.sent_count = due.sent_count
    RETURNING chats.id
)
SELECT count(*) FROM listed;
