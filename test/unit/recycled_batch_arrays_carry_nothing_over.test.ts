/**
 * The parallel verifier (src/export/parallel.ts) hands the result arrays of
 * a checked batch back for the next batch decoded on the main thread
 * (recycleResults()), and, with the native core, a Parquet row group's read
 * buffer too. Nothing of the earlier batch may survive into the next: an
 * event whose hash does not match must read as not matching whatever the
 * recycled arrays held, on the TypeScript path and on lines the native core
 * leaves to it; and the verifier must not keep a view into arrays that are
 * then overwritten. Exports that differ from a clean one only in a late
 * batch are checked to the exact sequence_no with recycling on every path.
 */
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { createHash } from 'node:crypto';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import type { ExportRow } from '../../src/export/columns.ts';
import { decodeBatch, recycleResults } from '../../src/export/decode_batch.ts';
import type { DecodeTask } from '../../src/export/decode_protocol.ts';
import type { ExportManifest } from '../../src/export/manifest.ts';
import { setNativeCoreEnabled } from '../../src/export/native.ts';
import { verifyExport } from '../../src/export/verify_export.ts';
import { writtenLines } from '../helpers/jsonl_lines.ts';
import { productionOrderRows, writeOneFileExport } from '../helpers/synthetic_export.ts';

let work: string;
beforeAll(async () => {
  work = await mkdtemp(path.join(tmpdir(), 'recycled-'));
});
afterAll(async () => {
  await rm(work, { recursive: true, force: true });
});
afterEach(() => setNativeCoreEnabled(true));

const rowsOf = (n: number): ExportRow[] => productionOrderRows(n, 'plant_hd');

function jsonlTask(lines: string[]): DecodeTask {
  const bytes = Buffer.from(lines.map((l) => `${l}\n`).join(''));
  const data = new ArrayBuffer(bytes.length);
  new Uint8Array(data).set(bytes);
  return { kind: 'jsonl', id: 1, label: 'f.jsonl', tenantId: 'plant_hd', data, length: bytes.length };
}

describe('recycled batch arrays', () => {
  it('carry no result of the batch before into the next (TypeScript path, and lines the native core leaves to it)', async () => {
    const lines = await writtenLines(work, rowsOf(40));
    // The same events again, edited after their hashes were computed: the hash must read as not matching.
    const edited = lines.map((l) => l.replace('"PO-', '"XO-'));
    // Whitespace after a key: a line the native core does not take (the TypeScript decodes it with JSON.parse).
    const declined = edited.map((l) => l.replace('"action":', '"action": '));
    for (const [native, next] of [[false, edited], [true, declined]] as const) {
      setNativeCoreEnabled(native);
      const first = await decodeBatch(jsonlTask(lines));
      expect(Array.from(new Uint8Array(first.same, 0, first.count))).toEqual(Array(40).fill(1));
      recycleResults(first);
      const second = await decodeBatch(jsonlTask(next));
      expect(second.same, 'the arrays were used again').toBe(first.same);
      expect(second.count).toBe(40);
      expect(Array.from(new Uint8Array(second.same, 0, second.count)), native ? 'native core' : 'TypeScript').toEqual(Array(40).fill(0));
    }
  });

  it('leave verification of exports changed in a late batch exact (every path: recycling on the main thread)', async () => {
    const rows = rowsOf(900);
    for (const format of ['jsonl', 'parquet'] as const) {
      for (const at of [700, 899]) {
        // An edit the stored hashes do not cover, after batches whose every event matched.
        const dir = await writeOneFileExport(path.join(work, `${format}-${at}`), format, rows.map((r, i) => (i === at ? { ...r, resource_id: 'PO-forged' } : r)), 100);
        const results: unknown[] = [];
        for (const [native, jobs] of [[true, 1], [true, 2], [false, 2], [false, 3]] as const) {
          setNativeCoreEnabled(native);
          const { core: _core, ...report } = await verifyExport({ dir, jobs, batchBytes: 16 << 10 });
          results.push({ problem: report.problem, seq: report.firstBadSequenceNo, checked: report.eventsChecked });
        }
        for (const r of results) expect(r, `${format}, event ${at + 1}`).toEqual(results[0]);
        expect(results[0]).toMatchObject({ problem: 'hash mismatch', seq: at + 1 });
      }
      // A clean export of many batches verifies clean: the hash each batch's first event links to is the one
      // kept from the batch before (a copy, not a view into arrays used again meanwhile).
      const clean = await writeOneFileExport(path.join(work, `${format}-clean`), format, rows, 100);
      for (const [native, jobs] of [[true, 2], [false, 2]] as const) {
        setNativeCoreEnabled(native);
        const report = await verifyExport({ dir: clean, jobs, batchBytes: 16 << 10 });
        expect({ ok: report.ok, checked: report.eventsChecked, problem: report.problem }).toEqual({ ok: true, checked: 900, problem: null });
      }
    }
  });

  it('a Parquet file\'s digest covers its bytes outside the row groups too, with the read buffers used again (native core) or not', async () => {
    const rows = rowsOf(900);
    const dir = await writeOneFileExport(path.join(work, 'digest'), 'parquet', rows, 50);
    const file = path.join(dir, 'events-00001.parquet');
    expect((await verifyExport({ dir, jobs: 2 })).ok).toBe(true);
    // One byte of the footer's created_by (outside every row group; no reader acts on it) changed, the manifest left as it was.
    const bytes = await readFile(file);
    const at = bytes.lastIndexOf(Buffer.from('pg-audit-trail export'));
    expect(at).toBeGreaterThan(0);
    bytes[at + 20] = 'T'.charCodeAt(0);
    await writeFile(file, bytes);
    for (const native of [true, false]) {
      setNativeCoreEnabled(native);
      const report = await verifyExport({ dir, jobs: 2 });
      expect(report.ok, native ? 'native core' : 'TypeScript').toBe(false);
      expect(JSON.stringify(report)).toMatch(/digest|sha256|SHA-256/i);
    }
    // The manifest given the edited file's digest: verifies (the footer's text is not in the chain).
    const manifestFile = path.join(dir, 'manifest.json');
    const manifest = JSON.parse(await readFile(manifestFile, 'utf8')) as ExportManifest;
    (manifest.files[0] as ExportManifest['files'][number]).sha256 = createHash('sha256').update(bytes).digest('hex');
    await writeFile(manifestFile, JSON.stringify(manifest));
    for (const native of [true, false]) {
      setNativeCoreEnabled(native);
      expect((await verifyExport({ dir, jobs: 2 })).ok, native ? 'native core' : 'TypeScript').toBe(true);
    }
  });
});
