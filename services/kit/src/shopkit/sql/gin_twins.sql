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

CREATE OR REPLACE FUNCTION shop_add_gin_twins() RETURNS event_trigger
LANGUAGE plpgsql AS $$
DECLARE
    created record;
    first_key text;
BEGIN
    FOR created IN
        SELECT i.indexrelid AS oid, n.nspname AS schema_name, t.relname AS table_name
        FROM pg_event_trigger_ddl_commands() AS c
        JOIN pg_index AS i ON i.indexrelid = c.objid
        JOIN pg_class AS x ON x.oid = i.indexrelid
        JOIN pg_am AS am ON am.oid = x.relam
        JOIN pg_class AS t ON t.oid = i.indrelid
        JOIN pg_namespace AS n ON n.oid = t.relnamespace
        WHERE c.command_tag = 'CREATE INDEX' AND am.amname = 'btree'
          AND pg_get_indexdef(i.indexrelid) LIKE '%_jsonb -> %'
    LOOP
        -- The leading key only: like a MongoDB compound index, the twin serves equality on the
        -- index's first field (FerretDB filters the rest in Go, among that field's few rows).
        first_key := pg_get_indexdef(created.oid, 1, true);
        EXECUTE format(
            'CREATE INDEX IF NOT EXISTS %I ON %I.%I USING gin (%s) WITH (fastupdate = off)',
            'shop_gin_' || created.oid, created.schema_name, created.table_name, first_key
        );
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
