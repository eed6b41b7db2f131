-- Verification in the database: one ordered pass over a tenant's chain.
--
-- Runs with the caller's rights, so a reader verifies only what row-level
-- security lets it read. Each event's record_hash is recomputed from its
-- stored fields (docs/hash-chain.md) and its link, position and the chain
-- head are checked. The first break is reported:
--   duplicate      two events hold the same sequence_no
--   gap            sequence numbers are missing (events deleted)
--   hash mismatch  an event's fields no longer give its record_hash (edited, moved, renumbered)
--   broken link    an event's record_hash is not what its successor recorded as prev_hash
--                  (it was rewritten together with its own hash); the rewritten event is named
--   truncated      the chain head is ahead of the last event (events removed from the end)
--   head mismatch  events beyond the chain head, or a last event that is not the head
-- The whole check of a range in one scan, for the common case of an intact
-- chain: every record_hash recomputed from the event's fields, and the stored
-- sequence numbers and links checked in order. chain_in_order is false at the
-- first break of any kind other than a hash mismatch (a duplicate, a gap, a
-- broken link, a wrong start): in sequence_no order, each event must be the
-- one after the event before it and hold its record_hash as prev_hash, which
-- is true exactly when verify()'s exact, slower query below finds no break;
-- only then is that query skipped. Only RETURN QUERY may use parallel workers (a
-- SELECT INTO in PL/pgSQL may not), and the SET clauses make the planner choose
-- them for a tenant's whole chain: the workers read and hash their share of the
-- events and sort it by sequence_no (cheap: the heap is nearly in that order),
-- the leader merges the shares and compares each event with the one before.
-- work_mem keeps each share's sort in memory up to about 500,000 events a
-- process (with the default 4MB a 200,000-event chain spilled to disk).
-- This replaced a parallel hash scan followed by a second, serial scan of the
-- stored hashes (sort, two window passes) that cost about a third of the time
-- (200,000 events: ~320 of ~1,100 ms); the merge, sort and comparison of this
-- one cost about 130 ms. In a UTF8 database with a UTF8 client the hashes are
-- recomputed by encode_body_in_utf8_session(), the same bytes by a cheaper
-- route (sql/03_canonical_encoding.sql).
create function audit_trail.scan_chain(p_tenant text, p_from bigint, p_to bigint)
returns table (events_checked bigint, last_sequence_no bigint, first_hash_mismatch bigint, chain_in_order boolean)
language plpgsql stable
set search_path = pg_catalog, pg_temp
set parallel_setup_cost = 0
set parallel_tuple_cost = 0
set min_parallel_index_scan_size = 0
set work_mem = '64MB'
as $$
declare
  -- From the second event on, the event before the range is read too, for its link.
  v_start bigint := p_from - case when p_from > 1 then 1 else 0 end;
  v_utf8_session boolean := pg_catalog.getdatabaseencoding() = 'UTF8'
                            and pg_catalog.current_setting('client_encoding') = 'UTF8';
begin
  return query
  select count(*) filter (where w.sequence_no >= p_from),
         max(w.sequence_no),
         min(w.sequence_no) filter (where w.hash_mismatch and w.sequence_no >= p_from),
         -- (coalesce: a NULL hash, which a superuser can write after dropping NOT NULL, is a break, never a pass)
         coalesce(bool_and(coalesce(
           case when w.prev_seq is null then w.sequence_no = v_start
                else w.sequence_no = w.prev_seq + 1 and w.prev_hash = w.prev_record_hash end
           and (w.sequence_no <> 1 or w.prev_hash = audit_trail.genesis_hash()), false)), true)
    from (
      select r.sequence_no, r.prev_hash, r.hash_mismatch,
             lag(r.sequence_no) over (order by r.sequence_no) as prev_seq,
             lag(r.record_hash) over (order by r.sequence_no) as prev_record_hash
        from (
          select ev.sequence_no, ev.prev_hash, ev.record_hash,
                 audit_trail.chain_hash(case when v_utf8_session
                   then audit_trail.encode_body_in_utf8_session(ev.event_id, ev.tenant_id, ev.occurred_at, ev.ingested_at,
                     ev.actor_type, ev.actor_id, ev.actor_name, ev.auth_method, ev.source_ip, ev.user_agent_hash,
                     ev.action, ev.resource_type, ev.resource_id, ev.parent_type, ev.parent_id, ev.changes, ev.reason,
                     ev.context, ev.db_identity)
                   else audit_trail.encode_body(ev.event_id, ev.tenant_id, ev.occurred_at, ev.ingested_at,
                     ev.actor_type, ev.actor_id, ev.actor_name, ev.auth_method, ev.source_ip, ev.user_agent_hash,
                     ev.action, ev.resource_type, ev.resource_id, ev.parent_type, ev.parent_id, ev.changes, ev.reason,
                     ev.context, ev.db_identity) end,
                   ev.sequence_no, ev.prev_hash) = ev.record_hash
                 is not true  -- a NULL hash or field is a mismatch, not a pass
                 or octet_length(ev.prev_hash) is distinct from 32 or ev.encoding_version is distinct from 1 as hash_mismatch
            from audit_trail.events ev
           where ev.tenant_id = p_tenant
             and ev.sequence_no >= v_start
             and (p_to is null or ev.sequence_no <= p_to)
           order by ev.sequence_no
        ) r
    ) w;
end
$$;
comment on function audit_trail.scan_chain(text, bigint, bigint) is
  'Internal to verify(): one scan of a range that recomputes every record_hash and checks order and links; names the first hash mismatch.';

create function audit_trail.verify(tenant text, from_seq bigint default 1, to_seq bigint default null)
returns table (tenant_id text, events_checked bigint, ok boolean, first_bad_sequence_no bigint, problem text, detail text)
language plpgsql stable
set search_path = pg_catalog, pg_temp
as $$
declare
  v_from bigint := greatest(coalesce(from_seq, 1), 1);
  v_head_seq bigint;
  v_head_hash bytea;
  v_checked bigint;
  v_last_seq bigint;
  v_last_hash bytea;
  v_bad_seq bigint;
  v_problem text;
  v_detail text;
  v_mismatch_seq bigint;
  v_mismatch_event_id text;
  v_mismatch_stored bytea;
  v_mismatch_computed bytea;
  v_in_order boolean;
begin
  if tenant is null or tenant = '' then
    raise exception 'audit_trail.verify needs a tenant' using errcode = '22023',
      hint = 'select * from audit_trail.verify(''plant_hd''); the CLI''s audit-trail verify checks every tenant.';
  end if;
  if to_seq is not null and to_seq < v_from then
    raise exception 'to_seq % is before from_seq %', to_seq, v_from using errcode = '22023', hint = 'Give a range with from_seq <= to_seq.';
  end if;
  select h.sequence_no, h.record_hash into v_head_seq, v_head_hash
    from audit_trail.chain_heads h where h.tenant_id = verify.tenant;

  -- The one scan (scan_chain above): every record_hash recomputed on parallel
  -- workers, order and links checked; only the first hash mismatch matters.
  select s.events_checked, s.last_sequence_no, s.first_hash_mismatch, s.chain_in_order
    into v_checked, v_last_seq, v_mismatch_seq, v_in_order
    from audit_trail.scan_chain(verify.tenant, v_from, to_seq) s;
  if v_mismatch_seq is not null then
    select m.event_id, m.record_hash, m.computed into v_mismatch_event_id, v_mismatch_stored, v_mismatch_computed
      from (select ev.event_id, ev.record_hash, ev.prev_hash, ev.encoding_version,
                   audit_trail.chain_hash(audit_trail.encode_body(ev.event_id, ev.tenant_id, ev.occurred_at,
                     ev.ingested_at, ev.actor_type, ev.actor_id, ev.actor_name, ev.auth_method, ev.source_ip,
                     ev.user_agent_hash, ev.action, ev.resource_type, ev.resource_id, ev.parent_type, ev.parent_id,
                     ev.changes, ev.reason, ev.context, ev.db_identity), ev.sequence_no, ev.prev_hash) as computed
              from audit_trail.events ev
             where ev.tenant_id = verify.tenant and ev.sequence_no = v_mismatch_seq) m
     where m.computed = m.record_hash is not true or octet_length(m.prev_hash) is distinct from 32 or m.encoding_version is distinct from 1
     order by m.record_hash limit 1;
  end if;

  -- Only when the scan found a break: which one comes first, and what it is.
  -- Duplicates, gaps, the hash mismatch and links, from the stored hashes; the
  -- first bad sequence_no wins, and at the same one the order of the priority
  -- column below.
  if v_mismatch_seq is not null or not v_in_order then
    select count(*) filter (where c.sequence_no >= v_from), max(c.sequence_no),
           (array_agg(c.bad_seq order by c.bad_seq, c.priority) filter (where c.problem is not null))[1],
           (array_agg(c.problem order by c.bad_seq, c.priority) filter (where c.problem is not null))[1],
           (array_agg(c.detail order by c.bad_seq, c.priority) filter (where c.problem is not null))[1]
      into v_checked, v_last_seq, v_bad_seq, v_problem, v_detail
    from (
      select e.sequence_no, e.record_hash,
        case
          when e.dup then e.sequence_no
          when e.prev_seq is null and e.sequence_no <> v_from - case when v_from > 1 then 1 else 0 end
            then v_from - case when v_from > 1 then 1 else 0 end
          when e.prev_seq is not null and e.sequence_no > e.prev_seq + 1 then e.prev_seq + 1
          when e.sequence_no = v_mismatch_seq and e.record_hash is not distinct from v_mismatch_stored then e.sequence_no
          when e.sequence_no = 1 and e.prev_hash is distinct from audit_trail.genesis_hash() then 1
          when e.prev_seq is not null and e.prev_hash is distinct from e.prev_record_hash and not e.prev_dup then e.prev_seq
        end as bad_seq,
        case
          when e.dup then 'duplicate'
          when e.prev_seq is null and e.sequence_no <> v_from - case when v_from > 1 then 1 else 0 end then 'gap'
          when e.prev_seq is not null and e.sequence_no > e.prev_seq + 1 then 'gap'
          when e.sequence_no = v_mismatch_seq and e.record_hash is not distinct from v_mismatch_stored then 'hash mismatch'
          when e.sequence_no = 1 and e.prev_hash is distinct from audit_trail.genesis_hash() then 'broken link'
          when e.prev_seq is not null and e.prev_hash is distinct from e.prev_record_hash and not e.prev_dup then 'broken link'
        end as problem,
        case
          when e.dup then format('%s events hold sequence_no %s (event ids differ: one of them was inserted)', e.dup_count, e.sequence_no)
          when e.prev_seq is null and e.sequence_no <> v_from - case when v_from > 1 then 1 else 0 end then
            format('expected the chain to continue at sequence_no %s, found %s: events %s to %s are missing',
                   v_from - case when v_from > 1 then 1 else 0 end, e.sequence_no, v_from - case when v_from > 1 then 1 else 0 end, e.sequence_no - 1)
          when e.prev_seq is not null and e.sequence_no > e.prev_seq + 1 then
            format('after sequence_no %s the next event is %s: events %s to %s are missing', e.prev_seq, e.sequence_no, e.prev_seq + 1, e.sequence_no - 1)
          when e.sequence_no = v_mismatch_seq and e.record_hash is not distinct from v_mismatch_stored then
            format('event %s (%s): stored record_hash %s, recomputed from its fields %s; its content or position was changed',
                   e.sequence_no, v_mismatch_event_id, coalesce(encode(e.record_hash, 'hex'), 'NULL'), coalesce(encode(v_mismatch_computed, 'hex'), 'NULL (a NULL field, prev_hash or encoding_version)'))
          when e.sequence_no = 1 and e.prev_hash is distinct from audit_trail.genesis_hash() then
            format('event 1 has prev_hash %s, expected the genesis value (32 zero bytes)', coalesce(encode(e.prev_hash, 'hex'), 'NULL'))
          when e.prev_seq is not null and e.prev_hash is distinct from e.prev_record_hash and not e.prev_dup then
            format('event %s has record_hash %s but event %s recorded prev_hash %s: event %s was rewritten with a recomputed hash',
                   e.prev_seq, encode(e.prev_record_hash, 'hex'), e.sequence_no, encode(e.prev_hash, 'hex'), e.prev_seq)
        end as detail,
        case when e.dup then 0 when e.sequence_no > coalesce(e.prev_seq, e.sequence_no - 1) + 1 then 1
             when e.sequence_no = v_mismatch_seq then 2 else 3 end as priority
      from (
        select x.*,
               lag(x.sequence_no) over w as prev_seq,
               lag(x.record_hash) over w as prev_record_hash,
               coalesce(lag(x.dup) over w, false) as prev_dup
        from (
          select ev.sequence_no, ev.prev_hash, ev.record_hash,
                 count(*) over (partition by ev.sequence_no) as dup_count,
                 count(*) over (partition by ev.sequence_no) > 1 as dup
            from audit_trail.events ev
           where ev.tenant_id = verify.tenant
             and ev.sequence_no >= v_from - case when v_from > 1 then 1 else 0 end
             and (to_seq is null or ev.sequence_no <= to_seq)
        ) x
        window w as (order by x.sequence_no, x.record_hash)
      ) e
    ) c;
  end if;

  select ev.record_hash into v_last_hash from audit_trail.events ev
   where ev.tenant_id = verify.tenant and ev.sequence_no = v_last_seq limit 1;

  tenant_id := verify.tenant;
  events_checked := coalesce(v_checked, 0);
  -- An event without a sequence_no (NOT NULL dropped by a superuser) is in no range: a break wherever it is.
  if v_problem is null and exists (select from audit_trail.events ev where ev.tenant_id = verify.tenant and ev.sequence_no is null) then
    v_problem := 'gap';
    v_detail := format('an event of tenant %s holds no sequence_no (event_id %s): it was inserted or renumbered outside the chain', verify.tenant,
      (select ev.event_id from audit_trail.events ev where ev.tenant_id = verify.tenant and ev.sequence_no is null limit 1));
  end if;
  if v_problem is not null then
    ok := false; first_bad_sequence_no := v_bad_seq; problem := v_problem; detail := v_detail;
  elsif v_head_seq is null and v_last_seq is null then
    ok := false; problem := 'not found';
    detail := format('no events and no chain head of tenant %s are visible to role %s (unknown tenant, or not granted)', verify.tenant, current_user);
  elsif v_head_seq is null then
    ok := false; problem := 'head mismatch'; first_bad_sequence_no := v_from;
    detail := format('events of tenant %s exist but its chain head is missing', verify.tenant);
  elsif v_last_seq is null and v_from > v_head_seq then
    -- A range that starts after the chain head holds no events, and none were found: nothing to check.
    ok := true;
  elsif to_seq is null and coalesce(v_last_seq, v_from - 1) < v_head_seq then
    ok := false; problem := 'truncated'; first_bad_sequence_no := coalesce(v_last_seq, v_from - 1) + 1;
    detail := format('the chain head is at sequence_no %s but the last event is %s: events %s to %s were removed',
                     v_head_seq, coalesce(v_last_seq::text, 'none'), coalesce(v_last_seq, v_from - 1) + 1, v_head_seq);
  elsif to_seq is null and v_last_seq > v_head_seq then
    ok := false; problem := 'head mismatch'; first_bad_sequence_no := v_head_seq + 1;
    detail := format('the chain head is at sequence_no %s but events run to %s: events after the head were inserted',
                     v_head_seq, v_last_seq);
  elsif to_seq is null and v_last_hash is distinct from v_head_hash then
    ok := false; problem := 'head mismatch'; first_bad_sequence_no := v_head_seq;
    detail := format('event %s has record_hash %s but the chain head holds %s', v_head_seq,
                     encode(v_last_hash, 'hex'), encode(v_head_hash, 'hex'));
  elsif to_seq is not null and coalesce(v_last_seq, v_from - 1) < least(to_seq, v_head_seq) then
    ok := false; problem := 'gap'; first_bad_sequence_no := coalesce(v_last_seq, v_from - 1) + 1;
    detail := format('the range ends at sequence_no %s but the last event found is %s', least(to_seq, v_head_seq),
                     coalesce(v_last_seq::text, 'none'));
  else
    ok := true;
  end if;
  return next;
end
$$;
comment on function audit_trail.verify(text, bigint, bigint) is
  'Verifies a tenant''s hash chain (or a range of it) in one pass; names the first bad sequence_no and the kind of break.';
