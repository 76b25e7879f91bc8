-- Keyword search for `PgVectorStore` (`VectorStore::search_text`): a `tsvector` of each chunk's
-- text, kept by Postgres itself, and a GIN index on it.
--
-- * `text_search` is a stored generated column: every insert or update of `text` recomputes
--   it, and adding it back-fills the existing rows (the `ALTER TABLE` rewrites `rag_vectors`
--   under an ACCESS EXCLUSIVE lock: run this migration when a short pause of the vector store
--   is acceptable).
-- * The configuration is `english` (stemming, English stop words), named explicitly so the
--   column does not depend on the server's `default_text_search_config`; queries use the same.
-- * Only the first 100000 characters of a text are indexed: a `tsvector` is limited to 1 MB, and
--   a longer text of many distinct words would otherwise make the whole write fail. 100000
--   characters stay far below the limit even for text made only of distinct one-letter words
--   (about 7 bytes of tsvector per character at worst); chunks are much shorter in practice.
-- * The index is a plain GIN index on the tsvector: a GIN index cannot lead with the tenant and
--   agent (`text` columns) without the `btree_gin` extension, which this schema does not
--   require. Searches still always filter by tenant and agent (the primary key serves that
--   part), and row-level security on `rag_vectors` (migration 0005) covers the new column like
--   every other.

ALTER TABLE rag_vectors
    ADD COLUMN text_search tsvector
    GENERATED ALWAYS AS (to_tsvector('english'::regconfig, left(text, 100000))) STORED;

CREATE INDEX rag_vectors_by_text ON rag_vectors USING gin (text_search);
