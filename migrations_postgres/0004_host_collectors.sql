-- Which collectors hear each HSM: every collector adds what each batch it stores (or finds stored by another) holds
-- of each host, in the batch's transaction. Events are counted per collector, copies included: what it received.
CREATE TABLE host_collectors (
    host       TEXT NOT NULL,             -- host.name, '' when the lines name none
    collector  TEXT NOT NULL,
    first_seen BIGINT NOT NULL,           -- event.created of the first line, microseconds since the epoch
    last_seen  BIGINT NOT NULL,           -- ... of the latest
    events     BIGINT NOT NULL,
    PRIMARY KEY (host, collector)
);
