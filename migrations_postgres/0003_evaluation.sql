-- What the leader's rule evaluation keeps: the rule engine's state per rule and group, and the rule cursor, written
-- together in one transaction, so that the next leader continues a half-full window where the last one left it.
CREATE TABLE rule_state (
    rule_id   TEXT NOT NULL,
    rule_hash TEXT NOT NULL,              -- the rule's source hash: state of a changed rule is not restored
    group_key TEXT NOT NULL,
    state     TEXT NOT NULL,              -- JSON
    PRIMARY KEY (rule_id, group_key)
);

-- How far the leader's rule evaluation has gone: the next leader continues from here.
CREATE TABLE rule_cursor (
    id            SMALLINT PRIMARY KEY CHECK (id = 1),
    last_event_id BIGINT NOT NULL,
    term          BIGINT NOT NULL         -- the term of the leader that moved it last
);
INSERT INTO rule_cursor (id, last_event_id, term) VALUES (1, 0, 0);
