-- Svix delivery ids already applied: a retried delivery (same svix-id) is
-- acknowledged without being applied twice. Pruned after 7 days (Svix retries
-- for about 3).
CREATE TABLE webhook_deliveries (
    id          TEXT   NOT NULL PRIMARY KEY,
    received_at BIGINT NOT NULL
);
CREATE INDEX webhook_deliveries_received_at ON webhook_deliveries (received_at);
