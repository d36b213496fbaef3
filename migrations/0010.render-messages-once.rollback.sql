-- Back to 0009: every answer renders its messages.
ALTER TABLE messages DROP COLUMN rendered;
DROP FUNCTION message_json(bigint, bigint, text, text, timestamptz, timestamptz);
