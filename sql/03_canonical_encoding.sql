-- The canonical byte encoding of an event, version 1 (docs/hash-chain.md).
--
-- Every field is written as a 4-byte big-endian length followed by that many
-- bytes; SQL NULL is the length 0xFFFFFFFF with no bytes. Text is UTF-8, a
-- timestamp is the int64 count of microseconds since 1970-01-01T00:00:00Z, a
-- bigint is int64, jsonb is the UTF-8 text PostgreSQL's jsonb output gives
-- (keys ordered, fixed spacing; independent of every session setting), json
-- (db_identity) is its stored text, byte for byte.
--
-- record_hash = sha256(event_body || field(sequence_no) || field(prev_hash)).
-- The chain position comes last so that the body (every other field) does not
-- depend on where the event lands in the chain.
-- These are SQL-standard function bodies: bound at creation, immune to search_path.

create function audit_trail.encode_text(p_value text) returns bytea
language sql stable parallel safe
-- convert_to(), not textsend(): textsend() converts to the session's client_encoding.
return case when p_value is null then '\xffffffff'::bytea
            else pg_catalog.int4send(pg_catalog.octet_length(p_value))
                 operator(pg_catalog.||) pg_catalog.convert_to(p_value, 'UTF8') end;

-- The same field encoding, written so that the jsonb-to-text conversion, the
-- costly part, is evaluated once: array_send() of a one-element bytea array
-- ends with exactly the field (4-byte length, or -1 for NULL, then the bytes)
-- after its 20-byte header.
create function audit_trail.encode_jsonb(p_value jsonb) returns bytea
language sql stable parallel safe
return pg_catalog.substr(pg_catalog.array_send(array[pg_catalog.convert_to(p_value::text, 'UTF8')]), 21);

create function audit_trail.encode_timestamp(p_value timestamptz) returns bytea
language sql immutable parallel safe
return case when p_value is null then '\xffffffff'::bytea
            else '\x00000008'::bytea operator(pg_catalog.||) pg_catalog.int8send(
              (extract(epoch from pg_catalog.timezone('UTC', p_value)) operator(pg_catalog.*) 1000000)::bigint) end;

create function audit_trail.encode_body(
  p_event_id text, p_tenant_id text, p_occurred_at timestamptz, p_ingested_at timestamptz,
  p_actor_type text, p_actor_id text, p_actor_name text, p_auth_method text, p_source_ip text,
  p_user_agent_hash text, p_action text, p_resource_type text, p_resource_id text,
  p_parent_type text, p_parent_id text, p_changes jsonb, p_reason text, p_context jsonb,
  p_db_identity json) returns bytea
language sql stable parallel safe
-- The same bytes as 'PGAT' || version || encode_text(p_event_id) || encode_text(p_tenant_id)
-- || encode_timestamp(p_occurred_at) || ... || encode_text(p_db_identity::text), written as one
-- array_send() of the fields' bytes: after its 20-byte header, the binary form of a
-- one-dimensional bytea array is exactly that sequence of length-prefixed fields (-1 for
-- NULL). Each value is converted once, and the expression has a few dozen function calls
-- instead of about a hundred: the executor sets every call up anew in each statement that
-- runs it (in the commit step, in every transaction).
return '\x504741540001'::bytea  -- 'PGAT' then the encoding version, uint16 big-endian
  operator(pg_catalog.||) pg_catalog.substr(pg_catalog.array_send(array[
    pg_catalog.convert_to(p_event_id, 'UTF8'),
    pg_catalog.convert_to(p_tenant_id, 'UTF8'),
    pg_catalog.int8send((extract(epoch from p_occurred_at) operator(pg_catalog.*) 1000000)::bigint),
    pg_catalog.int8send((extract(epoch from p_ingested_at) operator(pg_catalog.*) 1000000)::bigint),
    pg_catalog.convert_to(p_actor_type, 'UTF8'),
    pg_catalog.convert_to(p_actor_id, 'UTF8'),
    pg_catalog.convert_to(p_actor_name, 'UTF8'),
    pg_catalog.convert_to(p_auth_method, 'UTF8'),
    pg_catalog.convert_to(p_source_ip, 'UTF8'),
    pg_catalog.convert_to(p_user_agent_hash, 'UTF8'),
    pg_catalog.convert_to(p_action, 'UTF8'),
    pg_catalog.convert_to(p_resource_type, 'UTF8'),
    pg_catalog.convert_to(p_resource_id, 'UTF8'),
    pg_catalog.convert_to(p_parent_type, 'UTF8'),
    pg_catalog.convert_to(p_parent_id, 'UTF8'),
    pg_catalog.convert_to(p_changes::text, 'UTF8'),
    pg_catalog.convert_to(p_reason, 'UTF8'),
    pg_catalog.convert_to(p_context::text, 'UTF8'),
    pg_catalog.convert_to(p_db_identity::text, 'UTF8')]), 21);

-- encode_body()'s bytes by a cheaper route that is right only when the database
-- and the session's client_encoding are both UTF8: textsend() gives a text's
-- bytes in the client_encoding, which is then the stored UTF-8 itself, and
-- jsonb_send() gives a version byte (1) and the jsonb's text the same way,
-- json_send() the json's stored text.
-- convert_to(..., 'UTF8') looks both encoding names up and checks the bytes in
-- every call, and the jsonb-to-text cast copies the text once more: this is
-- about 12% less for a whole verification (200,000 events, 2 cores: ~780 to
-- ~680 ms). Parallel workers send in the database encoding, so they give the
-- same bytes as the leader. Used only by verify()'s scan (scan_chain), which
-- checks both encodings first; everything that writes or exports uses
-- encode_body().
create function audit_trail.encode_body_in_utf8_session(
  p_event_id text, p_tenant_id text, p_occurred_at timestamptz, p_ingested_at timestamptz,
  p_actor_type text, p_actor_id text, p_actor_name text, p_auth_method text, p_source_ip text,
  p_user_agent_hash text, p_action text, p_resource_type text, p_resource_id text,
  p_parent_type text, p_parent_id text, p_changes jsonb, p_reason text, p_context jsonb,
  p_db_identity json) returns bytea
language sql stable parallel safe
return '\x504741540001'::bytea
  operator(pg_catalog.||) pg_catalog.substr(pg_catalog.array_send(array[
    pg_catalog.textsend(p_event_id),
    pg_catalog.textsend(p_tenant_id),
    pg_catalog.int8send((extract(epoch from p_occurred_at) operator(pg_catalog.*) 1000000)::bigint),
    pg_catalog.int8send((extract(epoch from p_ingested_at) operator(pg_catalog.*) 1000000)::bigint),
    pg_catalog.textsend(p_actor_type),
    pg_catalog.textsend(p_actor_id),
    pg_catalog.textsend(p_actor_name),
    pg_catalog.textsend(p_auth_method),
    pg_catalog.textsend(p_source_ip),
    pg_catalog.textsend(p_user_agent_hash),
    pg_catalog.textsend(p_action),
    pg_catalog.textsend(p_resource_type),
    pg_catalog.textsend(p_resource_id),
    pg_catalog.textsend(p_parent_type),
    pg_catalog.textsend(p_parent_id),
    pg_catalog.substr(pg_catalog.jsonb_send(p_changes), 2),
    pg_catalog.textsend(p_reason),
    pg_catalog.substr(pg_catalog.jsonb_send(p_context), 2),
    pg_catalog.json_send(p_db_identity)]), 21);

-- The chain step: the hash of a body at a position after a previous hash.
create function audit_trail.chain_hash(p_body bytea, p_sequence_no bigint, p_prev_hash bytea) returns bytea
language sql immutable parallel safe
return pg_catalog.sha256(p_body
  operator(pg_catalog.||) '\x00000008'::bytea operator(pg_catalog.||) pg_catalog.int8send(p_sequence_no)
  operator(pg_catalog.||) '\x00000020'::bytea operator(pg_catalog.||) p_prev_hash);

comment on function audit_trail.encode_body is 'Canonical encoding v1 of an event without its chain position (docs/hash-chain.md).';
comment on function audit_trail.chain_hash(bytea, bigint, bytea) is 'record_hash = sha256(body || field(sequence_no) || field(prev_hash)).';
comment on function audit_trail.encode_body_in_utf8_session is
  'encode_body(), only right when the database and the client_encoding are both UTF8 (verify() checks).';

-- A ULID (https://github.com/ulid/spec): 48-bit millisecond time + 80 random
-- bits, Crockford base32, 26 characters, lexicographically time-ordered.
-- Both parts are written as base64 digits and mapped onto the 32 digits by one
-- translate(): the time's ten 5-bit digits are first spread into 6-bit slots
-- (one per base64 digit, the top bit zero) of a bigint; the sixteen random
-- digits are the base64 digits of 12 random bytes of p_random (16 bytes of
-- gen_random_uuid(): bytes 0-5 and 10-15, which are fully random), each mapped
-- onto the 32 digits two to one, so each carries 5 random bits. Integer
-- arithmetic, about 1.5 us per id (a jsonpath over numerics took 6 us, which a
-- bulk import pays per row); a plain expression, so that the planner inlines
-- it into callers.
create function audit_trail.ulid_encode(p_ms bigint, p_random bytea) returns text
language sql stable parallel safe
return pg_catalog.translate(
         pg_catalog.substr(pg_catalog.encode(pg_catalog.int8send(
             (((p_ms operator(pg_catalog.>>) 45) operator(pg_catalog.&) 31) operator(pg_catalog.<<) 58) operator(pg_catalog.|) (((p_ms operator(pg_catalog.>>) 40) operator(pg_catalog.&) 31) operator(pg_catalog.<<) 52)
             operator(pg_catalog.|) (((p_ms operator(pg_catalog.>>) 35) operator(pg_catalog.&) 31) operator(pg_catalog.<<) 46) operator(pg_catalog.|) (((p_ms operator(pg_catalog.>>) 30) operator(pg_catalog.&) 31) operator(pg_catalog.<<) 40)
             operator(pg_catalog.|) (((p_ms operator(pg_catalog.>>) 25) operator(pg_catalog.&) 31) operator(pg_catalog.<<) 34) operator(pg_catalog.|) (((p_ms operator(pg_catalog.>>) 20) operator(pg_catalog.&) 31) operator(pg_catalog.<<) 28)
             operator(pg_catalog.|) (((p_ms operator(pg_catalog.>>) 15) operator(pg_catalog.&) 31) operator(pg_catalog.<<) 22) operator(pg_catalog.|) (((p_ms operator(pg_catalog.>>) 10) operator(pg_catalog.&) 31) operator(pg_catalog.<<) 16)
             operator(pg_catalog.|) (((p_ms operator(pg_catalog.>>) 5) operator(pg_catalog.&) 31) operator(pg_catalog.<<) 10) operator(pg_catalog.|) ((p_ms operator(pg_catalog.&) 31) operator(pg_catalog.<<) 4)), 'base64'), 1, 10)
         operator(pg_catalog.||) pg_catalog.encode(
           pg_catalog.substr(p_random, 1, 6) operator(pg_catalog.||) pg_catalog.substr(p_random, 11, 6), 'base64'),
         'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/',
         '0123456789ABCDEFGHJKMNPQRSTVWXYZ0123456789ABCDEFGHJKMNPQRSTVWXYZ');
comment on function audit_trail.ulid_encode(bigint, bytea) is
  'Crockford base32 of a ULID: 48-bit milliseconds and 80 random bits from 16 random bytes (gen_random_uuid()).';

create function audit_trail.new_ulid(p_at timestamptz default pg_catalog.clock_timestamp()) returns text
language plpgsql volatile parallel safe
set search_path = pg_catalog, pg_temp
as $$
declare
  v_ms bigint := floor(extract(epoch from p_at) * 1000)::bigint;
  v_random bytea := uuid_send(gen_random_uuid());
begin
  if v_ms is null or v_ms not between 0 and 281474976710655 then
    raise exception 'a ULID cannot carry the time %', p_at using errcode = '22008',
      hint = 'ULID times are milliseconds from 1970-01-01 to 10889-08-02 (48 bits).';
  end if;
  return audit_trail.ulid_encode(v_ms, v_random);
end
$$;
comment on function audit_trail.new_ulid(timestamptz) is 'A new ULID for the given moment (event_id).';
