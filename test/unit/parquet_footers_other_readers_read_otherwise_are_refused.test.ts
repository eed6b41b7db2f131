/**
 * A Parquet footer that other readers (pyarrow, pandas, DuckDB) could read as
 * other rows or values than those the verifier hashes is refused (a red team
 * made pyarrow and pandas show forged values in files that verified, and
 * DuckDB miss an event by forged statistics): columns no hash covers, a
 * column twice, foreign key-value metadata, value and row counts that
 * disagree, statistics, page indexes and bloom filters (the writer writes
 * none), a chunk whose first data page is outside it, chunks that overlap.
 * The footer of a real export passes.
 */
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { FileMetaData } from 'hyparquet';
import { openParquetExport, refuseWhatOtherReadersWouldReadOtherwise } from '../../src/export/parquet.ts';
import { chainedRows, writeOneFileExport } from '../helpers/synthetic_export.ts';

let work: string;
let metadata: FileMetaData;

beforeAll(async () => {
  work = await mkdtemp(path.join(tmpdir(), 'parquet-footer-'));
  const rows = chainedRows(30, (i) => ({
    event_id: `01JNK${String(i).padStart(21, '0')}`, tenant_id: 'plant_hd', occurred_at: 1741068900000000n + BigInt(i), ingested_at: 1741068900000000n + BigInt(i),
    actor_type: 'user', actor_id: 'operator.1', actor_name: null, auth_method: null, source_ip: null, user_agent_hash: null, action: 'update',
    resource_type: 'batch', resource_id: `B-${i}`, parent_type: null, parent_id: null, changes: '[]', reason: i % 2 ? 'ok' : null, context: '{}', db_identity: '{}',
  }));
  const dir = await writeOneFileExport(path.join(work, 'export'), 'parquet', rows, 10);
  metadata = (await openParquetExport(path.join(dir, 'events-00001.parquet'), 'events-00001.parquet')).metadata;
});

afterAll(async () => {
  await rm(work, { recursive: true, force: true });
});

/** A deep copy of the real footer, edited. */
function edited(edit: (m: FileMetaData) => void): FileMetaData {
  const copy = structuredClone(metadata);
  edit(copy);
  return copy;
}

const refusal = (m: FileMetaData): string => {
  try {
    refuseWhatOtherReadersWouldReadOtherwise(m, 'f.parquet');
    return 'accepted';
  } catch (err) {
    return (err as Error).message;
  }
};

describe('Parquet footers', () => {
  it('the writer\'s own footer passes', () => {
    expect(metadata.row_groups.length).toBe(3);
    expect(refusal(metadata)).toBe('accepted');
  });

  it('are refused when other readers would read them otherwise', () => {
    const chunk = (m: FileMetaData, g: number, c: number) => m.row_groups[g]!.columns[c]!.meta_data!;
    const cases: Array<[string, (m: FileMetaData) => void, RegExp]> = [
      ['an extra column', (m) => m.schema.push({ ...m.schema[17]!, name: 'forged_reason' }), /"forged_reason" is no column of the export/],
      ['a column twice', (m) => m.schema.push({ ...m.schema[17]! }), /appears twice/],
      ['pandas metadata', (m) => (m.key_value_metadata = [...(m.key_value_metadata ?? []), { key: 'pandas', value: '{}' }]), /"pandas" is not the writer's/],
      ['fewer values than rows', (m) => (chunk(m, 1, 16).num_values = chunk(m, 1, 16).num_values - 1n), /holds 9 values for 10 rows/],
      ['pages beyond num_rows', (m) => (m.num_rows = m.num_rows - 1n), /the footer says 29 rows, its row groups hold 30/],
      ['a data page before its chunk', (m) => { const c = chunk(m, 0, 16); c.dictionary_page_offset ??= c.data_page_offset; c.data_page_offset = 4n; }, /first data page \(at 4\) is outside its chunk/],
      ['min/max statistics', (m) => (chunk(m, 1, 0).statistics = { min_value: 1n, max_value: 10n, null_count: 0n }), /carries statistics/],
      // (DuckDB skips a row group whose null_count equals its number of values: no row can match)
      ['a null count alone', (m) => (chunk(m, 1, 3).statistics = { null_count: 10n }), /carries statistics/],
      ['a page index', (m) => (m.row_groups[2]!.columns[0]!.offset_index_offset = 100n), /has a page index or bloom filter/],
      ['a bloom filter', (m) => (chunk(m, 0, 3).bloom_filter_offset = 100n), /has a page index or bloom filter/],
      ['overlapping chunks', (m) => { chunk(m, 0, 2).total_compressed_size += 64n; if (chunk(m, 0, 2).dictionary_page_offset === undefined) chunk(m, 0, 2).dictionary_page_offset = chunk(m, 0, 2).data_page_offset; }, /overlap/],
    ];
    for (const [what, edit, message] of cases) expect(refusal(edited(edit)), what).toMatch(message);
  });
});
