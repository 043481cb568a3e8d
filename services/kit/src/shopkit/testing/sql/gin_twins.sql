-- GIN twins of FerretDB's indexes, kept in step by event triggers (FerretDB v1 on PostgreSQL).
--
-- FerretDB pushes an equality filter down as `_jsonb->'field' @> value`, and builds its indexes as
-- btrees on `(_jsonb->'field')`. A btree cannot serve `@>`, so without help every lookup, even by
-- `_id`, is a sequential scan (upstream issues 4646 and 4209). A GIN index on the same expression
-- serves `@>`; with `plan_cache_mode = force_custom_plan` (so the field name is a constant when the
-- planner matches expressions) lookups take about a millisecond at any collection size.
--
-- FerretDB keeps no record of these twins: each is named after its btree's oid, created when
-- FerretDB creates the btree and dropped when FerretDB drops it (a dropped table takes its twins).
-- `fastupdate = off`: the pending list would otherwise be scanned linearly after bulk loads.
-- This script runs at every start of the cluster, so it is idempotent and adds any missing twin.

-- The twin of one btree: on its first key only, as a MongoDB compound index serves equality on its
-- first field (FerretDB filters the rest in Go, among that field's few rows). Not for a nested
-- path (`a.b`): FerretDB queries those with `#>`, which the twin's expression would never match.
CREATE OR REPLACE FUNCTION shop_add_gin_twin(btree oid) RETURNS void
LANGUAGE plpgsql AS $$
DECLARE
    first_key text := pg_get_indexdef(btree, 1, true);
    target record;
BEGIN
    IF first_key !~ '^\(_jsonb -> ''[^'']*''::text\)$' THEN
        RETURN;
    END IF;
    SELECT n.nspname AS schema_name, t.relname AS table_name INTO target
    FROM pg_index AS i
    JOIN pg_class AS t ON t.oid = i.indrelid
    JOIN pg_namespace AS n ON n.oid = t.relnamespace
    WHERE i.indexrelid = btree;
    EXECUTE format(
        'CREATE INDEX IF NOT EXISTS %I ON %I.%I USING gin (%s) WITH (fastupdate = off)',
        'shop_gin_' || btree, target.schema_name, target.table_name, first_key
    );
END
$$;

-- The btrees a twin is for: FerretDB's, on `_jsonb` expressions (never a twin itself).
CREATE OR REPLACE FUNCTION shop_twinned(btree oid) RETURNS boolean
LANGUAGE sql STABLE AS $$
    SELECT am.amname = 'btree' AND pg_get_indexdef(btree) LIKE '%(_jsonb -> %'
    FROM pg_class AS x JOIN pg_am AS am ON am.oid = x.relam
    WHERE x.oid = btree
$$;

CREATE OR REPLACE FUNCTION shop_add_gin_twins() RETURNS event_trigger
LANGUAGE plpgsql AS $$
DECLARE
    created record;
BEGIN
    FOR created IN
        SELECT objid FROM pg_event_trigger_ddl_commands()
        WHERE command_tag = 'CREATE INDEX' AND shop_twinned(objid)
    LOOP
        PERFORM shop_add_gin_twin(created.objid);
    END LOOP;
END
$$;

CREATE OR REPLACE FUNCTION shop_drop_gin_twins() RETURNS event_trigger
LANGUAGE plpgsql AS $$
DECLARE
    dropped record;
BEGIN
    FOR dropped IN
        SELECT objid, schema_name FROM pg_event_trigger_dropped_objects()
        WHERE object_type = 'index' AND original
    LOOP
        EXECUTE format('DROP INDEX IF EXISTS %I.%I', dropped.schema_name, 'shop_gin_' || dropped.objid);
    END LOOP;
END
$$;

DROP EVENT TRIGGER IF EXISTS shop_add_gin_twins;
CREATE EVENT TRIGGER shop_add_gin_twins ON ddl_command_end
    WHEN TAG IN ('CREATE INDEX') EXECUTE FUNCTION shop_add_gin_twins();

DROP EVENT TRIGGER IF EXISTS shop_drop_gin_twins;
CREATE EVENT TRIGGER shop_drop_gin_twins ON sql_drop
    WHEN TAG IN ('DROP INDEX') EXECUTE FUNCTION shop_drop_gin_twins();

-- Backfill: twins for btrees made while the triggers were absent or older.
SELECT shop_add_gin_twin(i.indexrelid)
FROM pg_index AS i
JOIN pg_class AS t ON t.oid = i.indrelid
JOIN pg_namespace AS n ON n.oid = t.relnamespace
WHERE n.nspname NOT IN ('pg_catalog', 'information_schema') AND shop_twinned(i.indexrelid);
