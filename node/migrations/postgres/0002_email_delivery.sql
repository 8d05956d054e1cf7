-- Delivery of the e-mail outbox, as on SQLite (migrations/sqlite/0005_email_delivery.sql).
ALTER TABLE email_jobs ADD COLUMN attempts INTEGER NOT NULL DEFAULT 0;
ALTER TABLE email_jobs ADD COLUMN next_attempt_at BIGINT NOT NULL DEFAULT 0;
ALTER TABLE email_jobs ADD COLUMN sent_at BIGINT;
CREATE INDEX email_jobs_due ON email_jobs (next_attempt_at) WHERE sent_at IS NULL;
