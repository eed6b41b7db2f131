/**
 * audit-trail export: streams one tenant's events through a server-side
 * cursor (constant memory whatever the size) into data files plus
 * manifest.json, inside one REPEATABLE READ snapshot so the manifest's chain
 * head and the files agree.
 */
import { chmod, mkdir, mkdtemp, readdir, rename, rm, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { DatabaseError, UsageError } from '../errors.ts';
import { withClient, type ConnectionOptions } from '../db/connect.ts';
import { EXPORT_SELECT, REQUIRED_COLUMNS, type ExportRow } from './columns.ts';
import { JsonlFileWriter } from './jsonl.ts';
import { MANIFEST_FILE, type ExportManifest, type ManifestFile } from './manifest.ts';
import { ParquetFileWriter, type DataFileWriter } from './parquet.ts';

export type ExportFormat = 'parquet' | 'jsonl';

export interface ExportOptions extends ConnectionOptions {
  tenant: string;
  /** Directory to create; must not hold an export already. */
  outDir: string;
  /** Default 'parquet'. */
  format?: ExportFormat | undefined;
  /** First sequence_no; default 1. */
  fromSeq?: number | undefined;
  /** Last sequence_no; default: the chain head at the start of the export. */
  toSeq?: number | undefined;
  /** Events per data file before starting the next; default 1,000,000. */
  eventsPerFile?: number | undefined;
  /** Events per FETCH (and per Parquet row group); default 10,000. */
  batchSize?: number | undefined;
  /** Called after every batch with the events written so far and the expected total. */
  onProgress?: ((written: number, total: number) => void) | undefined;
}

/** Exports a tenant's events; returns the manifest that was written. */
export async function exportTenant(options: ExportOptions): Promise<ExportManifest> {
  const fromSeq = options.fromSeq ?? 1;
  if (options.toSeq !== undefined && options.toSeq < fromSeq) {
    throw new UsageError(`--to-seq ${options.toSeq} is before --from-seq ${fromSeq}`);
  }
  const outDir = path.resolve(options.outDir);
  const existing = await readdir(outDir).catch((err: NodeJS.ErrnoException) => {
    if (err.code === 'ENOENT') return [];
    throw err;
  });
  if (existing.length > 0) {
    throw new UsageError(`${options.outDir} is not empty`, {
      hint: 'Export into a new directory: an export is never overwritten or mixed with another.',
    });
  }
  // The files are written into a new directory beside the target and moved
  // into place complete: a failure (the server gone, a full disk) leaves no
  // half export behind, only the error.
  await mkdir(path.dirname(outDir), { recursive: true });
  const partial = await mkdtemp(`${outDir}.partial-`);
  try {
    const manifest = await writeExport(options, partial);
    await chmod(partial, 0o755); // (mkdtemp makes it private to its owner; an export is for others to read)
    await rename(partial, outDir);
    return manifest;
  } catch (err) {
    await rm(partial, { recursive: true, force: true });
    throw err;
  }
}

async function writeExport(options: ExportOptions, outDir: string): Promise<ExportManifest> {
  const format = options.format ?? 'parquet';
  const fromSeq = options.fromSeq ?? 1;
  const eventsPerFile = options.eventsPerFile ?? 1_000_000;
  const batchSize = options.batchSize ?? 10_000;
  return withClient(options, async (client) => {
    await client.query('begin transaction isolation level repeatable read read only');
    try {
      const head = (
        await client.query<{ sequence_no: string; record_hash: string }>(
          `select sequence_no::text, encode(record_hash, 'hex') as record_hash from audit_trail.chain_heads where tenant_id = $1`,
          [options.tenant],
        )
      ).rows[0];
      if (head === undefined) {
        throw new DatabaseError(`tenant ${options.tenant} has no chain (or this role may not read it)`, {
          code: '42704',
          hint: 'Check the tenant id (audit-trail verify lists every tenant); readers need audit_trail.grant_tenant_read().',
        });
      }
      const headSeq = Number(head.sequence_no);
      const lastSeq = Math.min(options.toSeq ?? headSeq, headSeq);
      const total = Math.max(0, lastSeq - fromSeq + 1);
      await client.query(
        `declare export_events no scroll cursor for
           select ${EXPORT_SELECT} from audit_trail.events e
            where e.tenant_id = $1 and e.sequence_no between $2 and $3
            order by e.sequence_no, e.record_hash`,
        [options.tenant, fromSeq, lastSeq],
      );

      const files: ManifestFile[] = [];
      let writer: DataFileWriter | null = null;
      let current: ManifestFile | null = null;
      let written = 0;
      let first: ExportRow | null = null;
      let last: ExportRow | null = null;
      const finishFile = async (): Promise<void> => {
        if (writer === null || current === null) return;
        const done = await writer.close();
        current.sha256 = done.sha256;
        current.bytes = done.bytes;
        files.push(current);
        writer = null;
        current = null;
      };
      for (;;) {
        const { rows } = await client.query<ExportRow>(`fetch ${batchSize} from export_events`);
        if (rows.length === 0) break;
        let offset = 0;
        while (offset < rows.length) {
          if (writer === null || current === null) {
            const name = `events-${String(files.length + 1).padStart(5, '0')}.${format}`;
            const target = path.join(outDir, name);
            writer = format === 'parquet' ? new ParquetFileWriter(target) : new JsonlFileWriter(target);
            current = { path: name, sha256: '', bytes: 0, event_count: 0, first_sequence_no: null, last_sequence_no: null };
          }
          const room = eventsPerFile - current.event_count;
          const slice = rows.slice(offset, offset + room);
          refuseMissingValues(slice, options.tenant);
          await (writer as DataFileWriter).writeRows(slice);
          const sliceFirst = slice[0] as ExportRow;
          const sliceLast = slice[slice.length - 1] as ExportRow;
          current.first_sequence_no ??= Number(sliceFirst.sequence_no);
          current.last_sequence_no = Number(sliceLast.sequence_no);
          current.event_count += slice.length;
          first ??= sliceFirst;
          last = sliceLast;
          offset += slice.length;
          written += slice.length;
          if (current.event_count >= eventsPerFile) await finishFile();
        }
        options.onProgress?.(written, total);
      }
      await finishFile();
      await client.query('close export_events');
      await client.query('commit');

      const manifest: ExportManifest = {
        format: 'pg-audit-trail export',
        manifest_version: 1,
        encoding_version: 1,
        tenant_id: options.tenant,
        data_format: format,
        exported_at: new Date().toISOString(),
        requested_range: { from_sequence_no: fromSeq, to_sequence_no: options.toSeq ?? null },
        chain_head: { sequence_no: headSeq, record_hash: head.record_hash },
        from_sequence_no: first === null ? null : Number(first.sequence_no),
        to_sequence_no: last === null ? null : Number(last.sequence_no),
        event_count: written,
        first_prev_hash: first?.prev_hash ?? null,
        first_record_hash: first?.record_hash ?? null,
        last_record_hash: last?.record_hash ?? null,
        files,
      };
      await writeFile(path.join(outDir, MANIFEST_FILE), `${JSON.stringify(manifest, null, 2)}\n`, { flag: 'wx' });
      return manifest;
    } catch (err) {
      await client.query('rollback').catch(() => undefined);
      throw err;
    }
  });
}

/** The export's name for a column of ExportRow (timestamps travel as microseconds). */
const ROW_KEY: Record<string, keyof ExportRow> = { occurred_at: 'occurred_at_us', ingested_at: 'ingested_at_us' };

/**
 * Refuses to export an event with NULL in a column that is never NULL in
 * audit_trail.events (a superuser dropped the constraint and wrote it): the
 * export would not be readable as evidence, and the trail needs verifying.
 */
function refuseMissingValues(rows: ExportRow[], tenant: string): void {
  for (const row of rows) {
    for (const column of REQUIRED_COLUMNS) {
      const key = ROW_KEY[column] ?? (column as keyof ExportRow);
      if (row[key] === null || row[key] === undefined) {
        throw new DatabaseError(`event ${row.sequence_no ?? '(no sequence_no)'} of tenant ${tenant} has no ${column}, which audit_trail.events never leaves NULL`, {
          code: 'XX001',
          hint: `The trail was changed outside pg-audit-trail: run audit-trail verify --tenant ${tenant} (with --anchors), and export after it has been examined.`,
        });
      }
    }
  }
}
