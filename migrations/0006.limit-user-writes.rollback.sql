DROP TABLE user_write_buckets;
