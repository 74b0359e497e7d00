-- The search index: per run of up to 256 events a batch stored (ids first_id to last_id, no other batch's between),
-- the distinct trigrams of their lines (src/store/search.rs numbers them), so that `contains` and `word` find a rare
-- string by reading a few runs. It replaces a trigram index over every line, which cost every insert a posting per
-- trigram of its line (measured: a third of two collectors' ingest) and most of the database's size; the lines of the
-- candidate runs are matched with ILIKE as before. Written in the batch's transaction; retention removes what it
-- prunes.
DROP INDEX events_original_trgm;

CREATE TABLE event_grams (
    first_id BIGINT NOT NULL,
    last_id  BIGINT NOT NULL,
    grams    BIGINT[] NOT NULL,
    PRIMARY KEY (first_id)
);
CREATE INDEX event_grams_grams ON event_grams USING gin (grams);
