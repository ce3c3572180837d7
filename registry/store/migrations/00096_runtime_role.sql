-- Services run as a runtime role that owns nothing (issue 10): it cannot
-- disable the audit log's triggers, alter a table or run DDL. The one piece
-- of DDL a service needs at run time, making the segment index's monthly
-- partitions, runs as the owner through this function, which does only
-- that. The grants themselves are made by `nokstream migrate
-- --runtime-role`, after every migration (store.GrantRuntime).

-- +goose Up
ALTER FUNCTION segments_ensure_partition(timestamptz) SECURITY DEFINER;
ALTER FUNCTION segments_ensure_partition(timestamptz) SET search_path = public, pg_temp;

-- +goose Down
ALTER FUNCTION segments_ensure_partition(timestamptz) RESET search_path;
ALTER FUNCTION segments_ensure_partition(timestamptz) SECURITY INVOKER;
