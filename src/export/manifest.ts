/** manifest.json of an export: what it holds and the SHA-256 of every file (docs/audit.md). */
import { readFile } from 'node:fs/promises';
import path from 'node:path';
import { z } from 'zod';
import { EvidenceFileError } from '../errors.ts';

export const MANIFEST_FILE = 'manifest.json';

const hex64 = z.string().regex(/^[0-9a-f]{64}$/, 'must be 64 lowercase hex characters');
const seq = z.number().int().positive();

export const manifestFileSchema = z.object({
  path: z
    .string()
    .min(1)
    .refine((p) => !p.includes('/') && !p.includes('\\') && p !== '.' && p !== '..', 'must be a plain file name in the export directory'),
  sha256: hex64,
  bytes: z.number().int().nonnegative(),
  event_count: z.number().int().nonnegative(),
  first_sequence_no: seq.nullable(),
  last_sequence_no: seq.nullable(),
});

export const manifestSchema = z.object({
  format: z.literal('pg-audit-trail export'),
  manifest_version: z.literal(1),
  encoding_version: z.literal(1),
  tenant_id: z.string().min(1),
  data_format: z.enum(['parquet', 'jsonl']),
  exported_at: z.iso.datetime(),
  requested_range: z.object({ from_sequence_no: seq, to_sequence_no: seq.nullable() }),
  chain_head: z.object({ sequence_no: z.number().int().nonnegative(), record_hash: hex64 }).nullable(),
  from_sequence_no: seq.nullable(),
  to_sequence_no: seq.nullable(),
  event_count: z.number().int().nonnegative(),
  first_prev_hash: hex64.nullable(),
  first_record_hash: hex64.nullable(),
  last_record_hash: hex64.nullable(),
  files: z.array(manifestFileSchema),
});

export type ExportManifest = z.infer<typeof manifestSchema>;
export type ManifestFile = z.infer<typeof manifestFileSchema>;

/** Reads and validates DIR/manifest.json; every failure names the file and what to do. */
export async function readManifest(dir: string): Promise<ExportManifest> {
  const file = path.join(dir, MANIFEST_FILE);
  let text: string;
  try {
    text = await readFile(file, 'utf8');
  } catch (err) {
    throw new EvidenceFileError(`${file} cannot be read: ${(err as NodeJS.ErrnoException).code ?? String(err)}`, file, '58P01', {
      hint: 'Point --export at the directory audit-trail export wrote (it holds manifest.json and the data files).',
      cause: err,
    });
  }
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch (err) {
    throw new EvidenceFileError(`${file} is not valid JSON`, file, '22P02', { hint: 'The manifest was damaged or edited; ask for a fresh export.', cause: err });
  }
  const parsed = manifestSchema.safeParse(json);
  if (!parsed.success) {
    const issue = parsed.error.issues[0];
    throw new EvidenceFileError(`${file}: ${issue?.path.join('.') || 'manifest'} ${issue?.message ?? 'is invalid'}`, file, '22P02', {
      hint: 'The manifest was damaged or edited, or is not an audit-trail export manifest; ask for a fresh export.',
    });
  }
  return parsed.data;
}
