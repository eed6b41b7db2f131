/**
 * Parquet export files, written with hyparquet-writer and read with hyparquet
 * (pure JavaScript: no native build, no install script; works after `npm ci`).
 *
 * Types: sequence_no INT64; occurred_at, ingested_at INT64 TIMESTAMP(MICROS,
 * isAdjustedToUTC) so DuckDB, Spark and pandas read them as timestamps with
 * microseconds; text and jsonb as BYTE_ARRAY UTF8 (jsonb is PostgreSQL's text
 * output, never the JSON logical type, so readers do not re-serialise it);
 * encoding_version INT32; prev_hash and record_hash as 64 hex characters.
 * One row group per write (the export's fetch batch), so memory stays bounded.
 */
import { createHash, type Hash } from 'node:crypto';
import { closeSync, openSync, writeSync } from 'node:fs';
import { createReadStream } from 'node:fs';
import { ByteWriter, ParquetWriter } from 'hyparquet-writer';
import { asyncBufferFromFile, parquetMetadataAsync, parquetReadObjects } from 'hyparquet';
import { EvidenceFileError } from '../errors.ts';
import type { ChainEvent } from '../chain/verifier.ts';
import { EXPORT_COLUMNS, REQUIRED_COLUMNS, type ExportRow } from './columns.ts';

// hyparquet-writer bundles its own hyparquet version: use the writer's schema type.
type SchemaElement = ConstructorParameters<typeof ParquetWriter>[0]['schema'][number];

export interface WrittenFile {
  sha256: string;
  bytes: number;
}

/** A data file being written. */
export interface DataFileWriter {
  readonly path: string;
  writeRows(rows: ExportRow[]): Promise<void>;
  close(): Promise<WrittenFile>;
}

function schemaElement(name: string, kind: string): SchemaElement {
  const repetition_type = REQUIRED_COLUMNS.has(name as never) ? 'REQUIRED' : 'OPTIONAL';
  switch (kind) {
    case 'int64':
      return { name, type: 'INT64', repetition_type };
    case 'int32':
      return { name, type: 'INT32', repetition_type };
    case 'timestamp':
      return { name, type: 'INT64', repetition_type, logical_type: { type: 'TIMESTAMP', isAdjustedToUTC: true, unit: 'MICROS' } };
    default:
      return { name, type: 'BYTE_ARRAY', converted_type: 'UTF8', repetition_type };
  }
}

export const PARQUET_SCHEMA: SchemaElement[] = [
  { name: 'root', num_children: EXPORT_COLUMNS.length },
  ...EXPORT_COLUMNS.map(([name, kind]) => schemaElement(name, kind)),
];

/** Writes row groups straight to the file descriptor, hashing what it writes. */
function hashingFileWriter(fd: number, digest: Hash): ByteWriter & { bytes: number } {
  const writer = new ByteWriter() as ByteWriter & { bytes: number; flush: () => void };
  writer.bytes = 0;
  writer.flush = () => {
    const chunk = new Uint8Array(writer.buffer, 0, writer.index);
    digest.update(chunk);
    let done = 0;
    while (done < chunk.length) done += writeSync(fd, chunk, done);
    writer.bytes += chunk.length;
    writer.index = 0;
  };
  writer.finish = () => writer.flush();
  return writer;
}

export class ParquetFileWriter implements DataFileWriter {
  private readonly fd: number;
  private readonly digest = createHash('sha256');
  private readonly byteWriter: ByteWriter & { bytes: number };
  private readonly writer: ParquetWriter;

  constructor(readonly path: string) {
    this.fd = openSync(path, 'wx');
    this.byteWriter = hashingFileWriter(this.fd, this.digest);
    this.writer = new ParquetWriter({
      writer: this.byteWriter,
      schema: PARQUET_SCHEMA,
      createdBy: 'pg-audit-trail export',
      kvMetadata: [{ key: 'pg-audit-trail.encoding_version', value: '1' }],
    });
  }

  async writeRows(rows: ExportRow[]): Promise<void> {
    if (rows.length === 0) return;
    const column = <T>(f: (r: ExportRow) => T): T[] => rows.map(f);
    const columnData = EXPORT_COLUMNS.map(([name]) => {
      switch (name) {
        case 'sequence_no':
          return { name, data: column((r) => BigInt(r.sequence_no)) };
        case 'occurred_at':
          return { name, data: column((r) => BigInt(r.occurred_at_us)) };
        case 'ingested_at':
          return { name, data: column((r) => BigInt(r.ingested_at_us)) };
        default:
          return { name, data: column((r) => r[name]) };
      }
    });
    await this.writer.write({ columnData, rowGroupSize: rows.length });
  }

  async close(): Promise<WrittenFile> {
    await this.writer.finish();
    closeSync(this.fd);
    return { sha256: this.digest.digest('hex'), bytes: this.byteWriter.bytes };
  }
}

/** SHA-256 of a file, streamed. */
export async function fileSha256(path: string): Promise<string> {
  const digest = createHash('sha256');
  for await (const chunk of createReadStream(path, { highWaterMark: 1 << 20 })) digest.update(chunk as Buffer);
  return digest.digest('hex');
}

const keepBytes = (bytes: Uint8Array): Uint8Array => bytes;
const keepMicros = (micros: bigint): bigint => micros;
const HEX64 = /^[0-9a-f]{64}$/;

function malformed(label: string, what: string, cause?: unknown): EvidenceFileError {
  return new EvidenceFileError(`${label}: ${what}`, label, '22P02', {
    hint: 'The Parquet file is damaged, truncated or was not written by audit-trail export. Ask for a fresh export, or compare with the copy that was handed over.',
    cause,
  });
}

function hashFromHexBytes(v: unknown, column: string, label: string, row: number): Buffer {
  const hexText = v instanceof Uint8Array ? Buffer.from(v.buffer, v.byteOffset, v.byteLength).toString('latin1') : v;
  if (typeof hexText !== 'string' || !HEX64.test(hexText)) throw malformed(label, `row ${row}: ${column} is not 64 hex characters`);
  return Buffer.from(hexText, 'hex');
}

/**
 * Reads a Parquet export file one row group at a time. Text stays as UTF-8
 * bytes (never decoded: the encoder hashes them as they are).
 */
export async function* readParquetEvents(path: string, label: string): AsyncGenerator<ChainEvent[]> {
  let file;
  let metadata;
  try {
    file = await asyncBufferFromFile(path);
    metadata = await parquetMetadataAsync(file);
  } catch (err) {
    throw malformed(label, `not a readable Parquet file (${err instanceof Error ? err.message : String(err)})`, err);
  }
  const names = metadata.schema.slice(1).map((s) => s.name);
  for (const [name] of EXPORT_COLUMNS) {
    if (!names.includes(name)) throw malformed(label, `column ${name} is missing`);
  }
  let rowStart = 0;
  for (const group of metadata.row_groups) {
    const rowEnd = rowStart + Number(group.num_rows);
    let rows: Record<string, unknown>[];
    try {
      rows = await parquetReadObjects({
        file,
        metadata,
        rowStart,
        rowEnd,
        parsers: { stringFromBytes: keepBytes, timestampFromMicroseconds: keepMicros },
      });
    } catch (err) {
      throw malformed(label, `rows ${rowStart + 1} to ${rowEnd} cannot be read (${err instanceof Error ? err.message : String(err)})`, err);
    }
    const batch: ChainEvent[] = new Array(rows.length);
    for (let i = 0; i < rows.length; i++) {
      const r = rows[i] as Record<string, unknown>;
      const seq = r['sequence_no'];
      const occurred = r['occurred_at'];
      const ingested = r['ingested_at'];
      if (typeof seq !== 'bigint' || typeof occurred !== 'bigint' || typeof ingested !== 'bigint') {
        throw malformed(label, `row ${rowStart + i + 1}: sequence_no, occurred_at and ingested_at must be INT64`);
      }
      batch[i] = {
        sequence_no: seq,
        event_id: r['event_id'] as Uint8Array,
        tenant_id: r['tenant_id'] as Uint8Array,
        occurred_at: occurred,
        ingested_at: ingested,
        actor_type: (r['actor_type'] ?? null) as Uint8Array | null,
        actor_id: (r['actor_id'] ?? null) as Uint8Array | null,
        actor_name: (r['actor_name'] ?? null) as Uint8Array | null,
        auth_method: (r['auth_method'] ?? null) as Uint8Array | null,
        source_ip: (r['source_ip'] ?? null) as Uint8Array | null,
        user_agent_hash: (r['user_agent_hash'] ?? null) as Uint8Array | null,
        action: (r['action'] ?? null) as Uint8Array | null,
        resource_type: (r['resource_type'] ?? null) as Uint8Array | null,
        resource_id: (r['resource_id'] ?? null) as Uint8Array | null,
        parent_type: (r['parent_type'] ?? null) as Uint8Array | null,
        parent_id: (r['parent_id'] ?? null) as Uint8Array | null,
        changes: (r['changes'] ?? null) as Uint8Array | null,
        reason: (r['reason'] ?? null) as Uint8Array | null,
        context: (r['context'] ?? null) as Uint8Array | null,
        db_identity: (r['db_identity'] ?? null) as Uint8Array | null,
        encoding_version: Number(r['encoding_version']),
        prev_hash: hashFromHexBytes(r['prev_hash'], 'prev_hash', label, rowStart + i + 1),
        record_hash: hashFromHexBytes(r['record_hash'], 'record_hash', label, rowStart + i + 1),
      };
    }
    rowStart = rowEnd;
    yield batch;
  }
}
