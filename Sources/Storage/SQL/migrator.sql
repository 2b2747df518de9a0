-- Named statements for the migrator (`muwad migrate`, and the schema check of `muwad serve`).

-- name: MigratorLock
-- Session advisory lock: one migrator at a time (key = hashtext('muwa.migrate')).
SELECT pg_advisory_lock(hashtext('muwa.migrate'));

-- name: MigratorUnlock
SELECT pg_advisory_unlock(hashtext('muwa.migrate'));

-- name: MigratorBootstrap
-- The bookkeeping table, created before the first migration.
CREATE SCHEMA IF NOT EXISTS muwa;
CREATE TABLE IF NOT EXISTS muwa.schema_migrations (
    version    integer PRIMARY KEY,
    name       text        NOT NULL,
    checksum   text        NOT NULL,
    applied_at timestamptz NOT NULL DEFAULT now()
);

-- name: MigratorHasTable
SELECT to_regclass('muwa.schema_migrations') IS NOT NULL AS present;

-- name: MigratorApplied
SELECT version, name, checksum FROM muwa.schema_migrations ORDER BY version;

-- name: MigratorRecord
INSERT INTO muwa.schema_migrations (version, name, checksum) VALUES ($1, $2, $3);

-- name: MigratorForget
DELETE FROM muwa.schema_migrations WHERE version = $1;
