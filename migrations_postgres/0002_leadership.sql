-- Which collector evaluates rules, records alerts and delivers them: the holder of a lease it renews well within
-- `leader_timeout`; when it stops renewing (killed, cut off), another takes the lease once it has run out. Every new
-- holder gets the next term, and a leader's writes check their term in the same transaction, so a leader that lost
-- the lease (a long pause) cannot write after its successor began.
CREATE TABLE leadership (
    only_row    SMALLINT PRIMARY KEY CHECK (only_row = 1),
    holder      TEXT NOT NULL,            -- collector name and process instance
    term        BIGINT NOT NULL,
    lease_until TIMESTAMPTZ NOT NULL
);

