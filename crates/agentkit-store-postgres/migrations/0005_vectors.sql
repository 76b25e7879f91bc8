-- Retrieval: the core `VectorStore` contract (`PgVectorStore`): chunks with their vectors, and
-- the entries of ingested documents, per tenant and agent.
--
-- * Vectors are `real[]` (no extension needed); searches are an exact scan of one tenant's and
--   agent's rows computing the cosine in SQL. `norm` is the vector's Euclidean length, stored
--   so a search computes it once per row at write time, not per query.
-- * `metadata` is `jsonb` (a flat object of strings): exact-match filters are
--   `metadata @> $filters`, served by the GIN index. `source` (the citation data) is `jsonb` too.
-- * Like every table: the tenant leads the primary key, every query filters by tenant and agent,
--   and row-level security admits only the rows of the tenant in `agentkit.tenant`.

CREATE TABLE rag_vectors (
    tenant       text COLLATE "C" NOT NULL CHECK (tenant <> ''),
    agent        text COLLATE "C" NOT NULL,
    id           text COLLATE "C" NOT NULL CHECK (id <> ''),
    document_id  text COLLATE "C" NOT NULL,
    vector       real[] NOT NULL,
    norm         real NOT NULL,
    text         text NOT NULL,
    source       jsonb NOT NULL,
    metadata     jsonb NOT NULL DEFAULT '{}',
    PRIMARY KEY (tenant, agent, id)
);

CREATE INDEX rag_vectors_by_document ON rag_vectors (tenant, agent, document_id);
CREATE INDEX rag_vectors_by_metadata ON rag_vectors USING gin (metadata jsonb_path_ops);

CREATE TABLE rag_documents (
    tenant        text COLLATE "C" NOT NULL CHECK (tenant <> ''),
    agent         text COLLATE "C" NOT NULL,
    id            text COLLATE "C" NOT NULL CHECK (id <> ''),
    title         text,
    content_hash  text NOT NULL,
    chunks        bigint NOT NULL CHECK (chunks >= 0),
    metadata      jsonb NOT NULL DEFAULT '{}',
    PRIMARY KEY (tenant, agent, id)
);

ALTER TABLE rag_vectors ENABLE ROW LEVEL SECURITY;
ALTER TABLE rag_vectors FORCE ROW LEVEL SECURITY;
CREATE POLICY tenant_isolation ON rag_vectors
    USING (tenant = current_setting('agentkit.tenant', true))
    WITH CHECK (tenant = current_setting('agentkit.tenant', true));

ALTER TABLE rag_documents ENABLE ROW LEVEL SECURITY;
ALTER TABLE rag_documents FORCE ROW LEVEL SECURITY;
CREATE POLICY tenant_isolation ON rag_documents
    USING (tenant = current_setting('agentkit.tenant', true))
    WITH CHECK (tenant = current_setting('agentkit.tenant', true));
