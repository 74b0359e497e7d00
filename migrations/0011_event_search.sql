-- The search index: for each block of 256 consecutive event ids (rowid = id >> 8), the distinct trigrams of the lines
-- it holds, each written as one word (its characters' code points, folded to ASCII lower case, in hex; see
-- src/store/search.rs). Contentless (the text stays only in `events`) and without positions: a query of a string's
-- trigrams names the blocks that may hold it, and only their rows are read and checked. About 10 bytes an event, where
-- an index of every row's trigram positions took three times the line.
CREATE VIRTUAL TABLE event_search USING fts5(
    trigrams, content = '', contentless_delete = 1, tokenize = 'ascii', detail = 'none'
);

-- The first block not yet indexed: blocks fill as events arrive, and a block is indexed once it is complete (the
-- events after it are read directly by a search). Existing databases start at 0 and are indexed while the writer is
-- idle.
CREATE TABLE search_cursor (
    id         INTEGER PRIMARY KEY CHECK (id = 1),
    next_block INTEGER NOT NULL
);
INSERT INTO search_cursor (id, next_block) VALUES (1, 0);
