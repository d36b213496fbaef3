-- depends: 0010.render-messages-once

-- The search index takes new messages' words through a small pending list
-- (64 kB) instead of straight into its posting trees. Straight in
-- (fastupdate = off, migrations/0009) each send inserted each of its words
-- into that word's posting tree, one descent and one WAL record each: a
-- third of a batch of sends' time in PostgreSQL (bench/send_costs.py, 62 us
-- of about 190 a send). Through the pending list a send appends its entries
-- to the list, and the send that fills it merges the whole list, sorted,
-- into the trees: one descent per word for every message the list holds.
-- Measured with a batch of 16 sends (mean statement time, commit included,
-- 8 rounds of 300 statements each): 0.82 of straight in, p99 10.4 against
-- 11.7 ms. The default limit (4 MB) was what migrations/0009 measured
-- against: a merge that large cost sends 11% and their p99 31%; 64 kB holds
-- the entries of a few hundred messages, whose merge stays within a batch's
-- usual time (the p99 above includes it).
-- A search reads the list too, all of it: at 64 kB, a handful of pages.
-- Changing the parameters rewrites nothing; entries already pending stay
-- until a merge or VACUUM takes them.
ALTER INDEX messages_search SET (fastupdate = on, gin_pending_list_limit = 64);
