-- The trap listener's own SNMPv3 engine (the authoritative engine of the informs sent to it): its ID, made once, and
-- how many times it has started, which senders compare to their cached time and which must never go back.
CREATE TABLE snmp_engine (
    only_row  INTEGER PRIMARY KEY CHECK (only_row = 1),
    engine_id BLOB NOT NULL,
    boots     INTEGER NOT NULL
);
