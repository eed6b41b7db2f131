/**
 * Synthetic exports for the offline verifier's unit tests: a chain of export
 * rows with valid hashes (each test chooses the fields) and the manifest of a
 * one-file export. No database: the hashes come from the documented encoding
 * (src/chain/encoding.ts), which the integration tests check against it.
 */
import { ChainEncoder, GENESIS_HASH, type EventBodyFields } from '../../src/chain/encoding.ts';
import type { ExportRow } from '../../src/export/columns.ts';
import type { ExportManifest } from '../../src/export/manifest.ts';
import { mkdir, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { JsonlFileWriter } from '../../src/export/jsonl.ts';
import { ParquetFileWriter, type DataFileWriter, type WrittenFile } from '../../src/export/parquet.ts';

/** Text fields of these tests are strings or null (never bytes). */
function text(value: EventBodyFields[keyof EventBodyFields]): string | null {
  return value as string | null;
}

/** Events 1..n of one chain from genesis, fields of event i from fieldsOf(i), record_hash computed. */
export function chainedRows(n: number, fieldsOf: (i: number) => EventBodyFields): ExportRow[] {
  const encoder = new ChainEncoder();
  const rows: ExportRow[] = [];
  let prev: Buffer = GENESIS_HASH;
  for (let i = 1; i <= n; i++) {
    const f = fieldsOf(i);
    const record = encoder.recordHash(f, BigInt(i), prev);
    rows.push({
      sequence_no: String(i),
      event_id: text(f.event_id) as string,
      tenant_id: text(f.tenant_id) as string,
      occurred_at_us: String(f.occurred_at),
      ingested_at_us: String(f.ingested_at),
      actor_type: text(f.actor_type) as string,
      actor_id: text(f.actor_id),
      actor_name: text(f.actor_name),
      auth_method: text(f.auth_method),
      source_ip: text(f.source_ip),
      user_agent_hash: text(f.user_agent_hash),
      action: text(f.action) as string,
      resource_type: text(f.resource_type) as string,
      resource_id: text(f.resource_id),
      parent_type: text(f.parent_type),
      parent_id: text(f.parent_id),
      changes: text(f.changes) as string,
      reason: text(f.reason),
      context: text(f.context) as string,
      db_identity: text(f.db_identity) as string,
      encoding_version: 1,
      prev_hash: prev.toString('hex'),
      record_hash: record.toString('hex'),
    });
    prev = record;
  }
  return rows;
}

/** The manifest of an export of `rows` (the whole chain from 1) in one data file. */
export function oneFileManifest(rows: ExportRow[], format: 'jsonl' | 'parquet', file: string, written: WrittenFile): ExportManifest {
  const first = rows[0] as ExportRow;
  const last = rows[rows.length - 1] as ExportRow;
  return {
    format: 'pg-audit-trail export',
    manifest_version: 1,
    encoding_version: 1,
    tenant_id: first.tenant_id,
    data_format: format,
    exported_at: new Date().toISOString(),
    requested_range: { from_sequence_no: 1, to_sequence_no: null },
    chain_head: { sequence_no: rows.length, record_hash: last.record_hash },
    from_sequence_no: 1,
    to_sequence_no: rows.length,
    event_count: rows.length,
    first_prev_hash: first.prev_hash,
    first_record_hash: first.record_hash,
    last_record_hash: last.record_hash,
    files: [{ path: file, sha256: written.sha256, bytes: written.bytes, event_count: rows.length, first_sequence_no: 1, last_sequence_no: rows.length }],
  };
}

/**
 * Writes `rows` as a one-file export (events-00001.jsonl or .parquet and its
 * manifest) into `dir`, which it creates, `rowsPerWrite` rows per writeRows()
 * call (a Parquet row group each); returns `dir`.
 */
export async function writeOneFileExport(dir: string, format: 'jsonl' | 'parquet', rows: ExportRow[], rowsPerWrite = rows.length): Promise<string> {
  await mkdir(dir);
  const name = `events-00001.${format}`;
  const writer: DataFileWriter = format === 'jsonl' ? new JsonlFileWriter(path.join(dir, name)) : new ParquetFileWriter(path.join(dir, name));
  for (let i = 0; i < rows.length; i += Math.max(1, rowsPerWrite)) await writer.writeRows(rows.slice(i, i + Math.max(1, rowsPerWrite)));
  const written = await writer.close();
  await writeFile(path.join(dir, 'manifest.json'), JSON.stringify(oneFileManifest(rows, format, name, written), null, 2));
  return dir;
}

/**
 * A chain of n production-order updates of one tenant, with text outside
 * ASCII (combining marks, right-to-left, outside the BMP) in every third
 * actor name and a multi-line reason in every fifth event.
 */
export function productionOrderRows(n: number, tenant: string): ExportRow[] {
  const t0 = 1_741_068_900_000_000n;
  return chainedRows(n, (i): EventBodyFields => ({
    event_id: `01JNK${String(i).padStart(21, '0')}`,
    tenant_id: tenant,
    occurred_at: t0 + BigInt(i) * 1000n,
    ingested_at: t0 + BigInt(i) * 1000n + 17n,
    actor_type: 'user',
    actor_id: `operator.${i % 7}`,
    actor_name: i % 3 === 0 ? 'Zoë Çelik \u05e9\u05dc\u05d5\u05dd e\u0301 \u{1F600}' : null,
    auth_method: 'badge',
    source_ip: null,
    user_agent_hash: null,
    action: 'update',
    resource_type: 'production_order',
    resource_id: `PO-${i}`,
    parent_type: null,
    parent_id: null,
    changes: `[{"after": ${i + 1}, "field": "quantity", "before": ${i}}]`,
    reason: i % 5 === 0 ? 'line 1\nline 2 "quoted" \\ tab\t' : null,
    context: '{"capture_method": "trigger"}',
    db_identity: '{"login":"mes_app","app":"mes","client":"10.0.0.7","pid":4242,"xid":1234567}',
  }));
}
