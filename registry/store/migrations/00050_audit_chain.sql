-- The audit log proves itself (issue 10): every row carries the SHA-256 of
-- the row before it chained with its own content, so that changing,
-- inserting or removing a row breaks the chain at that row
-- (`nokstream audit verify`). Rows are chained in id order: the trigger
-- takes a transaction lock and assigns the id under it, so ids follow the
-- order in which rows joined the chain.

-- +goose Up
ALTER TABLE audit_log ADD COLUMN prev_hash bytea, ADD COLUMN hash bytea;

-- audit_log_digest is a row's link: SHA-256 of the previous row's hash and
-- the row's fields as a JSON array (jsonb's text is canonical; the time in
-- UTC with microseconds, whatever the session's time zone).
-- +goose StatementBegin
CREATE FUNCTION audit_log_digest(prev bytea, id bigint, at timestamptz, actor_id bigint, actor_login text,
    action text, object text, remote_addr text, purpose text, detail jsonb) RETURNS bytea
    LANGUAGE sql IMMUTABLE AS $$
  SELECT sha256(prev || convert_to(jsonb_build_array(id,
      to_char(at AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"'),
      coalesce(actor_id, 0), actor_login, action, object, remote_addr, purpose, detail)::text, 'UTF8'))
$$;
-- +goose StatementEnd

-- Chain the rows already there, in id order.
ALTER TABLE audit_log DISABLE TRIGGER audit_log_no_change;
-- +goose StatementBegin
DO $$
DECLARE
  r audit_log;
  prev bytea := '\x'::bytea;
BEGIN
  FOR r IN SELECT * FROM audit_log ORDER BY id LOOP
    UPDATE audit_log SET prev_hash = prev,
      hash = audit_log_digest(prev, r.id, r.at, r.actor_id, r.actor_login, r.action, r.object, r.remote_addr, r.purpose, r.detail)
    WHERE id = r.id RETURNING hash INTO prev;
  END LOOP;
END $$;
-- +goose StatementEnd
ALTER TABLE audit_log ENABLE TRIGGER audit_log_no_change;
ALTER TABLE audit_log ALTER COLUMN prev_hash SET NOT NULL, ALTER COLUMN hash SET NOT NULL;

-- +goose StatementBegin
CREATE FUNCTION audit_log_chain() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
  prev bytea;
BEGIN
  -- One row joins the chain at a time, until its transaction ends; the id
  -- is taken under the lock so that id order is chain order.
  PERFORM pg_advisory_xact_lock(hashtext('nokstream.audit_log'));
  NEW.id := nextval(pg_get_serial_sequence('audit_log', 'id'));
  SELECT hash INTO prev FROM audit_log ORDER BY id DESC LIMIT 1;
  NEW.prev_hash := coalesce(prev, '\x'::bytea);
  NEW.hash := audit_log_digest(NEW.prev_hash, NEW.id, NEW.at, NEW.actor_id, NEW.actor_login, NEW.action,
    NEW.object, NEW.remote_addr, NEW.purpose, NEW.detail);
  RETURN NEW;
END $$;
-- +goose StatementEnd
CREATE TRIGGER audit_log_chain BEFORE INSERT ON audit_log FOR EACH ROW EXECUTE FUNCTION audit_log_chain();

-- +goose Down
DROP TRIGGER audit_log_chain ON audit_log;
DROP FUNCTION audit_log_chain();
DROP FUNCTION audit_log_digest(bytea, bigint, timestamptz, bigint, text, text, text, text, text, jsonb);
ALTER TABLE audit_log DROP COLUMN prev_hash, DROP COLUMN hash;
