-- The canonical byte encoding of an event, version 1 (docs/hash-chain.md).
--
-- Every field is written as a 4-byte big-endian length followed by that many
-- bytes; SQL NULL is the length 0xFFFFFFFF with no bytes. Text is UTF-8, a
-- timestamp is the int64 count of microseconds since 1970-01-01T00:00:00Z, a
-- bigint is int64, jsonb is the UTF-8 text PostgreSQL's jsonb output gives
-- (keys ordered, fixed spacing; independent of every session setting).
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
  p_db_identity jsonb) returns bytea
language sql stable parallel safe
return '\x504741540001'::bytea  -- 'PGAT' then the encoding version, uint16 big-endian
  operator(pg_catalog.||) audit_trail.encode_text(p_event_id)
  operator(pg_catalog.||) audit_trail.encode_text(p_tenant_id)
  operator(pg_catalog.||) audit_trail.encode_timestamp(p_occurred_at)
  operator(pg_catalog.||) audit_trail.encode_timestamp(p_ingested_at)
  operator(pg_catalog.||) audit_trail.encode_text(p_actor_type)
  operator(pg_catalog.||) audit_trail.encode_text(p_actor_id)
  operator(pg_catalog.||) audit_trail.encode_text(p_actor_name)
  operator(pg_catalog.||) audit_trail.encode_text(p_auth_method)
  operator(pg_catalog.||) audit_trail.encode_text(p_source_ip)
  operator(pg_catalog.||) audit_trail.encode_text(p_user_agent_hash)
  operator(pg_catalog.||) audit_trail.encode_text(p_action)
  operator(pg_catalog.||) audit_trail.encode_text(p_resource_type)
  operator(pg_catalog.||) audit_trail.encode_text(p_resource_id)
  operator(pg_catalog.||) audit_trail.encode_text(p_parent_type)
  operator(pg_catalog.||) audit_trail.encode_text(p_parent_id)
  operator(pg_catalog.||) audit_trail.encode_jsonb(p_changes)
  operator(pg_catalog.||) audit_trail.encode_text(p_reason)
  operator(pg_catalog.||) audit_trail.encode_jsonb(p_context)
  operator(pg_catalog.||) audit_trail.encode_jsonb(p_db_identity);

-- The chain step: the hash of a body at a position after a previous hash.
create function audit_trail.chain_hash(p_body bytea, p_sequence_no bigint, p_prev_hash bytea) returns bytea
language sql immutable parallel safe
return pg_catalog.sha256(p_body
  operator(pg_catalog.||) '\x00000008'::bytea operator(pg_catalog.||) pg_catalog.int8send(p_sequence_no)
  operator(pg_catalog.||) '\x00000020'::bytea operator(pg_catalog.||) p_prev_hash);

comment on function audit_trail.encode_body is 'Canonical encoding v1 of an event without its chain position (docs/hash-chain.md).';
comment on function audit_trail.chain_hash(bytea, bigint, bytea) is 'record_hash = sha256(body || field(sequence_no) || field(prev_hash)).';

-- A ULID (https://github.com/ulid/spec): 48-bit millisecond time + 80 random
-- bits, Crockford base32, 26 characters, lexicographically time-ordered.
-- p_random is 16 bytes of gen_random_uuid(): the low 5 bits of its 15 fully
-- random bytes and, for the last character, the 4 random bits of byte 6 and
-- one of byte 8 give the 80 bits. A plain expression (no translate(), no text
-- concatenation: about 1 us here) so that the planner inlines it into callers.
create function audit_trail.ulid_encode(p_ms bigint, p_random bytea) returns text
language sql immutable parallel safe
return pg_catalog.encode(pg_catalog.set_byte(pg_catalog.set_byte(pg_catalog.set_byte(pg_catalog.set_byte(pg_catalog.set_byte(pg_catalog.set_byte(pg_catalog.set_byte(pg_catalog.set_byte(pg_catalog.set_byte(pg_catalog.set_byte(pg_catalog.set_byte(pg_catalog.set_byte(pg_catalog.set_byte(pg_catalog.set_byte(pg_catalog.set_byte(pg_catalog.set_byte(pg_catalog.set_byte(pg_catalog.set_byte(pg_catalog.set_byte(pg_catalog.set_byte(pg_catalog.set_byte(pg_catalog.set_byte(pg_catalog.set_byte(pg_catalog.set_byte(pg_catalog.set_byte(pg_catalog.set_byte('\x3030303030303030303030303030303030303030303030303030'::bytea,
    0, pg_catalog.get_byte('\x3031323334353637383941424344454647484a4b4d4e5051525354565758595a'::bytea, ((p_ms >> 45) & 31)::int)),
    1, pg_catalog.get_byte('\x3031323334353637383941424344454647484a4b4d4e5051525354565758595a'::bytea, ((p_ms >> 40) & 31)::int)),
    2, pg_catalog.get_byte('\x3031323334353637383941424344454647484a4b4d4e5051525354565758595a'::bytea, ((p_ms >> 35) & 31)::int)),
    3, pg_catalog.get_byte('\x3031323334353637383941424344454647484a4b4d4e5051525354565758595a'::bytea, ((p_ms >> 30) & 31)::int)),
    4, pg_catalog.get_byte('\x3031323334353637383941424344454647484a4b4d4e5051525354565758595a'::bytea, ((p_ms >> 25) & 31)::int)),
    5, pg_catalog.get_byte('\x3031323334353637383941424344454647484a4b4d4e5051525354565758595a'::bytea, ((p_ms >> 20) & 31)::int)),
    6, pg_catalog.get_byte('\x3031323334353637383941424344454647484a4b4d4e5051525354565758595a'::bytea, ((p_ms >> 15) & 31)::int)),
    7, pg_catalog.get_byte('\x3031323334353637383941424344454647484a4b4d4e5051525354565758595a'::bytea, ((p_ms >> 10) & 31)::int)),
    8, pg_catalog.get_byte('\x3031323334353637383941424344454647484a4b4d4e5051525354565758595a'::bytea, ((p_ms >> 5) & 31)::int)),
    9, pg_catalog.get_byte('\x3031323334353637383941424344454647484a4b4d4e5051525354565758595a'::bytea, (p_ms & 31)::int)),
    10, pg_catalog.get_byte('\x3031323334353637383941424344454647484a4b4d4e5051525354565758595a'::bytea, pg_catalog.get_byte(p_random, 0) & 31)),
    11, pg_catalog.get_byte('\x3031323334353637383941424344454647484a4b4d4e5051525354565758595a'::bytea, pg_catalog.get_byte(p_random, 1) & 31)),
    12, pg_catalog.get_byte('\x3031323334353637383941424344454647484a4b4d4e5051525354565758595a'::bytea, pg_catalog.get_byte(p_random, 2) & 31)),
    13, pg_catalog.get_byte('\x3031323334353637383941424344454647484a4b4d4e5051525354565758595a'::bytea, pg_catalog.get_byte(p_random, 3) & 31)),
    14, pg_catalog.get_byte('\x3031323334353637383941424344454647484a4b4d4e5051525354565758595a'::bytea, pg_catalog.get_byte(p_random, 4) & 31)),
    15, pg_catalog.get_byte('\x3031323334353637383941424344454647484a4b4d4e5051525354565758595a'::bytea, pg_catalog.get_byte(p_random, 5) & 31)),
    16, pg_catalog.get_byte('\x3031323334353637383941424344454647484a4b4d4e5051525354565758595a'::bytea, pg_catalog.get_byte(p_random, 7) & 31)),
    17, pg_catalog.get_byte('\x3031323334353637383941424344454647484a4b4d4e5051525354565758595a'::bytea, pg_catalog.get_byte(p_random, 8) & 31)),
    18, pg_catalog.get_byte('\x3031323334353637383941424344454647484a4b4d4e5051525354565758595a'::bytea, pg_catalog.get_byte(p_random, 9) & 31)),
    19, pg_catalog.get_byte('\x3031323334353637383941424344454647484a4b4d4e5051525354565758595a'::bytea, pg_catalog.get_byte(p_random, 10) & 31)),
    20, pg_catalog.get_byte('\x3031323334353637383941424344454647484a4b4d4e5051525354565758595a'::bytea, pg_catalog.get_byte(p_random, 11) & 31)),
    21, pg_catalog.get_byte('\x3031323334353637383941424344454647484a4b4d4e5051525354565758595a'::bytea, pg_catalog.get_byte(p_random, 12) & 31)),
    22, pg_catalog.get_byte('\x3031323334353637383941424344454647484a4b4d4e5051525354565758595a'::bytea, pg_catalog.get_byte(p_random, 13) & 31)),
    23, pg_catalog.get_byte('\x3031323334353637383941424344454647484a4b4d4e5051525354565758595a'::bytea, pg_catalog.get_byte(p_random, 14) & 31)),
    24, pg_catalog.get_byte('\x3031323334353637383941424344454647484a4b4d4e5051525354565758595a'::bytea, pg_catalog.get_byte(p_random, 15) & 31)),
    25, pg_catalog.get_byte('\x3031323334353637383941424344454647484a4b4d4e5051525354565758595a'::bytea, (pg_catalog.get_byte(p_random, 6) & 15) | ((pg_catalog.get_byte(p_random, 8) & 32) >> 1))), 'escape');
comment on function audit_trail.ulid_encode(bigint, bytea) is
  'Crockford base32 of a ULID: 48-bit milliseconds and 80 bits of 16 random bytes (gen_random_uuid()).';

create function audit_trail.new_ulid(p_at timestamptz default pg_catalog.clock_timestamp()) returns text
language plpgsql volatile parallel safe
set search_path = pg_catalog, pg_temp
as $$
declare
  v_ms bigint := (extract(epoch from p_at) * 1000)::bigint;
  v_random bytea := uuid_send(gen_random_uuid());
begin
  return audit_trail.ulid_encode(v_ms, v_random);
end
$$;
comment on function audit_trail.new_ulid(timestamptz) is 'A new ULID for the given moment (event_id).';
