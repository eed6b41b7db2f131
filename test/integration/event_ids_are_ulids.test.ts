/**
 * event_id is a ULID (https://github.com/ulid/spec): 26 characters of
 * Crockford base32, the first ten the millisecond of ingestion, the last
 * sixteen 80 random bits. The commit step builds it with few function calls
 * (sql/03_canonical_encoding.sql); this pins the format, the time part, the
 * randomness of every random character and the known vectors.
 */
import type pg from 'pg';
import { beforeAll, describe, expect, it } from 'vitest';
import { useTestDatabase } from '../helpers/database.ts';

const CROCKFORD = '0123456789ABCDEFGHJKMNPQRSTVWXYZ';

function decodeTime(id: string): number {
  let ms = 0;
  for (const ch of id.slice(0, 10)) ms = ms * 32 + CROCKFORD.indexOf(ch);
  return ms;
}

describe('event ids are ULIDs', () => {
  const db = useTestDatabase('event_ids_are_ulids');
  let c: pg.Client;

  beforeAll(async () => {
    c = await db.connect();
    await c.query(`create table public.readings (id int primary key, plant text not null, value numeric)`);
    await c.query(`select audit_trail.enable('public.readings', '{"tenant_column": "plant"}')`);
  });

  it('known vectors: time digits, and all-zero and all-one random bytes', async () => {
    const { rows } = await c.query<{ zero: string; ones: string }>(
      `select audit_trail.ulid_encode(1764163200123, '\\x00000000000000000000000000000000'::bytea) as zero,
              audit_trail.ulid_encode(1764163200123, '\\xffffffffffffffffffffffffffffffff'::bytea) as ones`,
    );
    expect(rows[0]).toEqual({ zero: '01KB05493V0000000000000000', ones: '01KB05493VZZZZZZZZZZZZZZZZ' });
    expect(decodeTime('01KB05493V')).toBe(1764163200123);
    // The largest 48-bit time.
    const max = await c.query<{ id: string }>(`select audit_trail.ulid_encode(281474976710655, '\\x00000000000000000000000000000000') as id`);
    expect(max.rows[0]!.id).toBe('7ZZZZZZZZZ0000000000000000');
  });

  it('2,000 captured events: well formed, unique, the time part is the ingestion millisecond, every random character varies', async () => {
    await c.query('begin');
    await c.query(`select pg_catalog.set_config('audit_trail.actor_id', 'usr_anna', true)`);
    await c.query(`insert into public.readings select g, 'plant_hd', g from generate_series(1, 2000) g`);
    await c.query('commit');
    const { rows } = await c.query<{ event_id: string; ingested_ms: string }>(
      `select event_id, floor(extract(epoch from ingested_at) * 1000)::bigint::text as ingested_ms
         from audit_trail.events where tenant_id = 'plant_hd' order by sequence_no`,
    );
    expect(rows).toHaveLength(2000);
    expect(new Set(rows.map((r) => r.event_id)).size).toBe(2000);
    for (const r of rows) {
      expect(r.event_id).toMatch(/^[0-9A-HJKMNP-TV-Z]{26}$/);
      expect(decodeTime(r.event_id)).toBe(Number(r.ingested_ms));
    }
    // 2,000 draws of a uniform 5-bit digit show every one of the 32 symbols at each position.
    for (let pos = 10; pos < 26; pos++) {
      const seen = new Set(rows.map((r) => r.event_id[pos]));
      expect(seen.size, `random character ${pos + 1}`).toBe(32);
    }
  });

  it('a time a ULID cannot carry is refused, not encoded wrongly', async () => {
    for (const at of ['1969-12-31 23:59:59.9995+00', '1960-01-01 00:00:00+00']) {
      const err = await c.query(`select audit_trail.new_ulid($1::timestamptz)`, [at]).then(
        () => undefined,
        (e: { code?: string; hint?: string }) => e,
      );
      expect(err, at).toMatchObject({ code: '22008' });
      expect(err?.hint ?? '').toContain('1970');
    }
  });

  it('record() and new_ulid() make ULIDs of the moment too', async () => {
    const { rows } = await c.query<{ id: string; now_ms: string }>(
      `select audit_trail.new_ulid() as id, floor(extract(epoch from clock_timestamp()) * 1000)::bigint::text as now_ms`,
    );
    expect(rows[0]!.id).toMatch(/^[0-9A-HJKMNP-TV-Z]{26}$/);
    expect(Math.abs(decodeTime(rows[0]!.id) - Number(rows[0]!.now_ms))).toBeLessThan(1000);
  });
});
