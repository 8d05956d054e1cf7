-- The epoch of the hub's notice log this node consumes (from the head of every stream). NULL
-- until the first stream; a stream of another epoch is refused, never consumed.
ALTER TABLE hub_cursor ADD COLUMN epoch TEXT;

-- What could not be delivered and must not block what can: an event or coordination change the
-- hub refused for good (its reason kept), or an entry of the hub's notice log this node cannot
-- read. An outbox event keeps its place (`seq`): a retry puts it back ahead of its signal's later
-- events, which wait behind it (`signal_id`) while other signals' events flow on.
CREATE TABLE dead_letters (
    id             INTEGER PRIMARY KEY AUTOINCREMENT,
    source         TEXT NOT NULL CHECK (source IN ('outbox', 'coordination', 'notice_log')),
    -- outbox and coordination: the event's place in its queue; notice_log: the entry's cursor.
    position       INTEGER NOT NULL,
    -- outbox only: the signal whose later events wait.
    signal_id      TEXT,
    -- outbox: the event's revision; others NULL.
    revision       INTEGER,
    -- As queued (the outbox's JSON) or as received (the log entry's protobuf bytes).
    payload        BLOB NOT NULL,
    reason         TEXT NOT NULL,
    quarantined_at INTEGER NOT NULL,
    UNIQUE (source, position)
) STRICT;

CREATE INDEX dead_letters_by_signal ON dead_letters (signal_id) WHERE signal_id IS NOT NULL;
