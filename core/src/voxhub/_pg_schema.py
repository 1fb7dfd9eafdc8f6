"""The job store's schema in PostgreSQL: one script per schema version, as for SQLite.

Version ``n`` here holds the same tables, columns and indexes as SQLite's version ``n``
(:data:`voxhub._sqlite._MIGRATIONS`), written in PostgreSQL's own DDL:

* ``REAL`` is ``DOUBLE PRECISION``; ``AUTOINCREMENT`` is an identity column.
* ``jobs.rowid`` is an identity column standing for SQLite's implicit rowid: listings
  page on ``(created_at, rowid)``, so each listing index ends in it.
* ``jobs.shown`` is a ``STORED`` generated column (SQLite's is ``VIRTUAL``).
* ``json_extract(text, '$.a.b')`` is defined as a small SQL function, for the few
  queries that read a field of stored JSON text.
* Every inserted event notifies channel :data:`EVENTS_CHANNEL` with its job id: waiters
  in any process ``LISTEN`` instead of polling the table.

No PostgreSQL store predates version 5 (this backend arrived with it), so the data
moves of version 4 have little to move; they are kept so every version means the same.

Never edit a released entry: add one. The version is the ``schema_version`` row of
``voxhub_meta`` (SQLite's ``PRAGMA user_version``), which also holds the store key's
check value.
"""

from __future__ import annotations

__all__ = ["BOOTSTRAP", "EVENTS_CHANNEL", "MIGRATIONS"]

#: The ``LISTEN``/``NOTIFY`` channel of new events; the payload is the job id.
EVENTS_CHANNEL = "voxhub_events"

#: Run before the migrations, under the migration lock.
BOOTSTRAP = """
CREATE TABLE IF NOT EXISTS voxhub_meta (
    name    TEXT PRIMARY KEY,
    value   TEXT NOT NULL
)
"""

MIGRATIONS: tuple[str, ...] = (
    f"""
    CREATE TABLE jobs (
        rowid           BIGINT GENERATED ALWAYS AS IDENTITY UNIQUE,
        job_id          TEXT PRIMARY KEY,
        provider        TEXT NOT NULL,
        profile         TEXT NOT NULL,
        kind            TEXT NOT NULL,
        idempotency_key TEXT,
        phase           TEXT NOT NULL,
        state           TEXT,
        status          TEXT,
        request         TEXT NOT NULL,
        handle          TEXT NOT NULL,
        vendor_id       TEXT,
        result          TEXT,
        batch           TEXT,
        owner           TEXT,
        lease_until     DOUBLE PRECISION,
        error           TEXT,
        created_at      DOUBLE PRECISION NOT NULL,
        updated_at      DOUBLE PRECISION NOT NULL
    );
    CREATE UNIQUE INDEX jobs_key ON jobs (provider, profile, idempotency_key);
    CREATE INDEX jobs_vendor ON jobs (provider, vendor_id);
    CREATE INDEX jobs_state ON jobs (state, provider);
    CREATE INDEX jobs_batch ON jobs (batch);
    CREATE TABLE events (
        seq     BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
        job_id  TEXT NOT NULL REFERENCES jobs (job_id),
        at      DOUBLE PRECISION NOT NULL,
        type    TEXT NOT NULL,
        data    TEXT NOT NULL
    );
    CREATE INDEX events_job ON events (job_id, seq);
    CREATE FUNCTION voxhub_event_notify() RETURNS trigger LANGUAGE plpgsql AS $$
    BEGIN
        PERFORM pg_notify('{EVENTS_CHANNEL}', NEW.job_id);
        RETURN NULL;
    END
    $$;
    CREATE TRIGGER events_notify AFTER INSERT ON events
        FOR EACH ROW EXECUTE FUNCTION voxhub_event_notify();
    CREATE FUNCTION json_extract(doc TEXT, path TEXT) RETURNS TEXT
        LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE AS $$
        SELECT jsonb_extract_path_text(doc::jsonb, VARIADIC string_to_array(substr(path, 3), '.'))
    $$;
    """,
    """
    CREATE TABLE callback_tokens (
        job_id      TEXT PRIMARY KEY REFERENCES jobs (job_id),
        token_hash  TEXT NOT NULL
    );
    """,
    """
    CREATE TABLE batches (
        batch_id        TEXT PRIMARY KEY,
        created_at      DOUBLE PRECISION NOT NULL,
        updated_at      DOUBLE PRECISION NOT NULL,
        settings        TEXT NOT NULL,
        total           INTEGER NOT NULL,
        owner           TEXT,
        lease_until     DOUBLE PRECISION,
        interrupted_at  DOUBLE PRECISION,
        runs            INTEGER NOT NULL DEFAULT 0
    );
    CREATE INDEX batches_created ON batches (created_at);
    CREATE TABLE batch_items (
        batch_id    TEXT NOT NULL REFERENCES batches (batch_id),
        seq         INTEGER NOT NULL,
        input       TEXT NOT NULL,
        job_id      TEXT REFERENCES jobs (job_id),
        state       TEXT NOT NULL,
        stage       TEXT,
        output      TEXT,
        error       TEXT,
        updated_at  DOUBLE PRECISION NOT NULL,
        PRIMARY KEY (batch_id, seq)
    );
    CREATE INDEX batch_items_state ON batch_items (batch_id, state, stage);
    CREATE INDEX batch_items_job ON batch_items (job_id);
    """,
    """
    CREATE TABLE results (
        job_id  TEXT PRIMARY KEY REFERENCES jobs (job_id),
        result  TEXT NOT NULL
    );
    INSERT INTO results (job_id, result) SELECT job_id, result FROM jobs WHERE result IS NOT NULL;
    ALTER TABLE jobs ADD COLUMN has_result INTEGER NOT NULL DEFAULT 0;
    UPDATE jobs SET has_result = 1 WHERE result IS NOT NULL;
    ALTER TABLE jobs DROP COLUMN result;
    ALTER TABLE jobs ADD COLUMN media TEXT;
    UPDATE jobs SET media = CASE json_extract(request, '$.media.type')
            WHEN 'file' THEN json_extract(request, '$.media.path')
            WHEN 'rtc' THEN 'rtc:' || json_extract(request, '$.media.channel')
            ELSE json_extract(request, '$.media.url') END
        WHERE json_extract(request, '$.media') IS NOT NULL;
    ALTER TABLE jobs ADD COLUMN vendor_ids TEXT NOT NULL DEFAULT '{}';
    ALTER TABLE jobs ADD COLUMN shown TEXT GENERATED ALWAYS AS (CASE
            WHEN phase = 'closed' THEN 'closed'
            WHEN state IS NOT NULL THEN state
            WHEN error IS NOT NULL AND error <> '' AND phase <> 'sending' THEN 'failed'
            ELSE phase END) STORED;
    DROP INDEX jobs_batch;
    CREATE INDEX jobs_batch ON jobs (batch, created_at, rowid);
    CREATE INDEX jobs_created ON jobs (created_at, rowid);
    CREATE INDEX jobs_shown ON jobs (shown, created_at, rowid);
    CREATE INDEX jobs_provider ON jobs (provider, created_at, rowid);
    """,
    """
    CREATE TABLE exports (
        job_id      TEXT NOT NULL REFERENCES results (job_id) ON DELETE CASCADE,
        format      TEXT NOT NULL,
        text        TEXT NOT NULL,
        created_at  DOUBLE PRECISION NOT NULL,
        PRIMARY KEY (job_id, format)
    );
    """,
    """
    CREATE TABLE limits (
        key         TEXT PRIMARY KEY,
        next_at     DOUBLE PRECISION NOT NULL,
        holders     TEXT NOT NULL,
        updated_at  DOUBLE PRECISION NOT NULL
    );
    """,
    """
    ALTER TABLE limits ADD COLUMN record TEXT;
    """,
)
