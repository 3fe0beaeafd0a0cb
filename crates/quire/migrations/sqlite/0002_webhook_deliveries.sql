-- Svix delivery ids already applied: a retried delivery (same svix-id) is
-- acknowledged without being applied twice. Pruned after 7 days (Svix retries
-- for about 3).
CREATE TABLE webhook_deliveries (
    id TEXT PRIMARY KEY NOT NULL,
    received_at INTEGER NOT NULL
) STRICT;
CREATE INDEX webhook_deliveries_received_at ON webhook_deliveries (received_at);
