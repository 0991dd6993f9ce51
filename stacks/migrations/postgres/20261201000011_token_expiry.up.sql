-- A token may expire (milliseconds since the epoch); after that it authenticates nothing.
ALTER TABLE api_tokens ADD COLUMN expires_at BIGINT;
