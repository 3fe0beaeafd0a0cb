-- quire PostgreSQL schema, version 1 (the same tables as the SQLite schema).
-- Timestamps are BIGINT unix microseconds. JSON is TEXT, not JSONB: JSONB
-- reorders object keys and .ipynb round trips need them byte-for-byte as
-- written. Ids are TEXT COLLATE "C" (notebook ids: hyphenated lowercase UUID),
-- so ordering is bytewise, as in SQLite, whatever the database's locale.
-- Titles and cell sources are BYTEA holding UTF-8: PostgreSQL TEXT cannot hold
-- U+0000, which JSON (and so the API and SQLite) allows.

-- One row per notebook. `version` is +1 per op; `epoch` changes only when
-- version continuity is lost (restore, op log reset, re-import). Writers of one
-- notebook serialize on this row (row lock taken at the start of each op).
CREATE TABLE notebooks (
    id          TEXT COLLATE "C" NOT NULL PRIMARY KEY,
    title       BYTEA  NOT NULL,
    owner_id    TEXT COLLATE "C" NOT NULL,
    created_at  BIGINT NOT NULL,
    updated_at  BIGINT NOT NULL,
    version     BIGINT NOT NULL DEFAULT 0 CHECK (version >= 0),
    epoch       TEXT   NOT NULL,
    metadata    TEXT   NOT NULL DEFAULT '{}'
);

-- "My notebooks", newest first, as owner.
CREATE INDEX notebooks_by_owner ON notebooks (owner_id, created_at DESC, id DESC);

-- Cells keyed by (notebook, id); order kept explicitly in `position`, dense
-- 0..n-1 (maintained by the store inside each op's transaction). Shifting
-- positions passes through duplicates, so uniqueness is checked at commit.
CREATE TABLE cells (
    notebook_id     TEXT COLLATE "C" NOT NULL REFERENCES notebooks (id) ON DELETE CASCADE,
    id              TEXT COLLATE "C" NOT NULL,
    position        BIGINT NOT NULL CHECK (position >= 0),
    cell_type       TEXT   NOT NULL CHECK (cell_type IN ('code', 'markdown', 'raw')),
    source          BYTEA  NOT NULL,
    metadata        TEXT   NOT NULL DEFAULT '{}',
    outputs         TEXT   NOT NULL DEFAULT '[]',
    execution_count BIGINT,
    attachments     TEXT,
    version         BIGINT NOT NULL CHECK (version >= 1),
    PRIMARY KEY (notebook_id, id),
    CONSTRAINT cells_position_unique UNIQUE (notebook_id, position)
        DEFERRABLE INITIALLY DEFERRED
);

-- Editors and viewers; the owner is notebooks.owner_id, never a row here.
CREATE TABLE members (
    notebook_id TEXT COLLATE "C" NOT NULL REFERENCES notebooks (id) ON DELETE CASCADE,
    user_id     TEXT COLLATE "C" NOT NULL,
    role        TEXT NOT NULL CHECK (role IN ('editor', 'viewer')),
    PRIMARY KEY (notebook_id, user_id)
);

-- "Notebooks shared with me" and user deletion.
CREATE INDEX members_by_user ON members (user_id, notebook_id);

-- The op log: the newest ops per notebook (retention bounded by the store),
-- for resume and for filling fan-out gaps. `op` is the AppliedOp JSON.
CREATE TABLE ops (
    notebook_id TEXT COLLATE "C" NOT NULL REFERENCES notebooks (id) ON DELETE CASCADE,
    version     BIGINT NOT NULL CHECK (version >= 1),
    author      TEXT   NOT NULL,
    op          TEXT   NOT NULL,
    at          BIGINT NOT NULL,
    PRIMARY KEY (notebook_id, version)
);
