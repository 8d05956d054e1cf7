-- Delivery of the e-mail outbox. A job is claimed for a while by moving next_attempt_at past
-- the claim (a node that dies mid-send leaves it to be tried again when the claim runs out),
-- retried with backoff, and marked sent in the transaction that audits the send. Sent jobs stay
-- until their notice goes (they cascade with it), so a notice sent again is never mailed twice.
ALTER TABLE email_jobs ADD COLUMN attempts INTEGER NOT NULL DEFAULT 0;
ALTER TABLE email_jobs ADD COLUMN next_attempt_at INTEGER NOT NULL DEFAULT 0;
ALTER TABLE email_jobs ADD COLUMN sent_at INTEGER;
CREATE INDEX email_jobs_due ON email_jobs (next_attempt_at) WHERE sent_at IS NULL;
