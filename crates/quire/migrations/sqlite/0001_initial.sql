-- quire SQLite schema, version 1.
-- Timestamps are INTEGER unix microseconds; JSON is TEXT; ids are TEXT
-- (notebook ids: hyphenated lowercase UUID).

-- One row per notebook. `version` is +1 per op; `epoch` changes only when
-- version continuity is lost (restore, op log reset, re-import).
CREATE TABLE notebooks (
    id          TEXT    NOT NULL PRIMARY KEY,
    title       TEXT    NOT NULL,
    owner_id    TEXT    NOT NULL,
    created_at  INTEGER NOT NULL,
    updated_at  INTEGER NOT NULL,
    version     INTEGER NOT NULL DEFAULT 0 CHECK (version >= 0),
    epoch       TEXT    NOT NULL,
    metadata    TEXT    NOT NULL DEFAULT '{}'
) STRICT;

-- "My notebooks", newest first, as owner.
CREATE INDEX notebooks_by_owner ON notebooks (owner_id, created_at DESC, id DESC);

-- Cells keyed by (notebook, id); order kept explicitly in `position`, dense
-- 0..n-1 (maintained by the store inside each op's transaction).
CREATE TABLE cells (
    notebook_id     TEXT    NOT NULL REFERENCES notebooks (id) ON DELETE CASCADE,
    id              TEXT    NOT NULL,
    position        INTEGER NOT NULL CHECK (position >= 0),
    cell_type       TEXT    NOT NULL CHECK (cell_type IN ('code', 'markdown', 'raw')),
    source          TEXT    NOT NULL,
    metadata        TEXT    NOT NULL DEFAULT '{}',
    outputs         TEXT    NOT NULL DEFAULT '[]',
    execution_count INTEGER,
    attachments     TEXT,
    version         INTEGER NOT NULL CHECK (version >= 1),
    PRIMARY KEY (notebook_id, id)
) STRICT;

CREATE INDEX cells_by_position ON cells (notebook_id, position);

-- Editors and viewers; the owner is notebooks.owner_id, never a row here.
CREATE TABLE members (
    notebook_id TEXT NOT NULL REFERENCES notebooks (id) ON DELETE CASCADE,
    user_id     TEXT NOT NULL,
    role        TEXT NOT NULL CHECK (role IN ('editor', 'viewer')),
    PRIMARY KEY (notebook_id, user_id)
) STRICT;

-- "Notebooks shared with me" and user deletion.
CREATE INDEX members_by_user ON members (user_id, notebook_id);

-- The op log: the newest ops per notebook (retention bounded by the store),
-- for resume and for filling fan-out gaps. `op` is the AppliedOp JSON.
CREATE TABLE ops (
    notebook_id TEXT    NOT NULL REFERENCES notebooks (id) ON DELETE CASCADE,
    version     INTEGER NOT NULL CHECK (version >= 1),
    author      TEXT    NOT NULL,
    op          TEXT    NOT NULL,
    at          INTEGER NOT NULL,
    PRIMARY KEY (notebook_id, version)
) STRICT;
