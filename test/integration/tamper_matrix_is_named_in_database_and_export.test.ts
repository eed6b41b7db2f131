/**
 * The tamper matrix of issue 3: every kind of tampering, at the first, a
 * middle and the last position, in the database and in an export, is detected
 * and named with the right sequence_no. Clean chains and exports verify clean.
 *
 * Tampering is done as a superuser would: session_replication_role = replica
 * bypasses the guard triggers. Exports are edited as an attacker with the
 * files in hand would: the file's digest and counts in the manifest are
 * recomputed, so only the chain (and the anchors) can tell.
 */
import { chmod, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { createHash } from 'node:crypto';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type pg from 'pg';
import { useTestDatabase } from '../helpers/database.ts';
import { recomputeChain, recordEvents, simpleEvents, tamper } from '../helpers/trail.ts';
import {
  anchorAll,
  ChainEncoder,
  exportTenant,
  generateKeys,
  loadPrivateKey,
  signCheckpoint,
  verifyExport,
  verifyTenant,
  verifyWithAnchors,
  type Checkpoint,
  type ExportManifest,
} from '../../src/index.ts';
import { parseJsonlEvent } from '../../src/export/jsonl.ts';
import { isoFromMicros } from '../../src/chain/encoding.ts';
import { pythonUnavailable, pythonVerdict } from '../helpers/python_verifier.ts';

const db = useTestDatabase('tamper_matrix');
/** Export verdicts the Python verifier agreed with (checked at the end: it must not have been skipped silently). */
let pythonVerdicts = 0;
let work: string;
let keyFile: string;
let publicKeyFile: string;
let otherKeyFile: string;
let client: pg.Client;

beforeAll(async () => {
  work = await mkdtemp(path.join(tmpdir(), 'tamper-'));
  const keys = await generateKeys({ outDir: path.join(work, 'keys') });
  keyFile = keys.privateKeyFile;
  publicKeyFile = keys.publicKeyFile;
  otherKeyFile = (await generateKeys({ outDir: path.join(work, 'other-keys') })).privateKeyFile;
  client = await db.connect();
});

afterAll(() => {
  if (pythonUnavailable() === null) expect(pythonVerdicts).toBeGreaterThanOrEqual(30);
});

const POSITIONS = ['first', 'middle', 'last'] as const;
type Position = (typeof POSITIONS)[number];
let counter = 0;

/** A tenant with 7 events (layout S). */
async function smallChain(label: string): Promise<string> {
  const tenant = `${label}_${++counter}`;
  await recordEvents(client, tenant, simpleEvents(7));
  return tenant;
}

/**
 * A tenant with three checkpoints (layout L): events 1-3, checkpoint at 3
 * (event 4 records it), events 5-7, checkpoint at 7 (event 8), events 9-11,
 * checkpoint at 11 (event 12). Each tenant has its own file store.
 */
async function anchoredChain(label: string): Promise<{ tenant: string; store: string }> {
  const tenant = `${label}_${++counter}`;
  const store = `file:${path.join(work, `store-${tenant}`)}`;
  for (let i = 0; i < 3; i++) {
    await recordEvents(client, tenant, simpleEvents(3));
    const run = await anchorAll({ databaseUrl: db.url, stores: [store], keyFile, tenant });
    expect(run.tenants[0]?.status).toBe('anchored');
  }
  return { tenant, store };
}

const CHECKPOINT_AT = { first: 3, middle: 7, last: 11 } as const;

async function dbVerdict(tenant: string, store?: string): Promise<{ ok: boolean; seq: number | null; problem: string | null }> {
  if (store === undefined) {
    const r = await verifyTenant(client, tenant);
    return { ok: r.ok, seq: r.firstBadSequenceNo, problem: r.problem };
  }
  const { tenants } = await verifyWithAnchors({ databaseUrl: db.url, tenant, anchors: [store], publicKeyFile });
  const r = tenants[0];
  return { ok: r?.ok ?? false, seq: r?.firstBadSequenceNo ?? null, problem: r?.problem ?? null };
}

async function exportOf(tenant: string): Promise<string> {
  const dir = path.join(work, `export-${tenant}-${++counter}`);
  await exportTenant({ databaseUrl: db.url, tenant, outDir: dir, format: 'jsonl' });
  return dir;
}

interface Line {
  [key: string]: unknown;
}

async function readLines(dir: string): Promise<Line[]> {
  const text = await readFile(path.join(dir, 'events-00001.jsonl'), 'utf8');
  return text.trimEnd().split('\n').map((l) => JSON.parse(l) as Line);
}

/** Rewrites the data file and recomputes its manifest entry (digest, bytes, count, range); `full` also the totals. */
async function writeLines(dir: string, lines: Line[], full = false): Promise<void> {
  const file = path.join(dir, 'events-00001.jsonl');
  const text = lines.map((l) => `${JSON.stringify(l)}\n`).join('');
  await writeFile(file, text);
  const manifestFile = path.join(dir, 'manifest.json');
  const manifest = JSON.parse(await readFile(manifestFile, 'utf8')) as ExportManifest;
  const entry = manifest.files[0] as ExportManifest['files'][number];
  entry.sha256 = createHash('sha256').update(text).digest('hex');
  entry.bytes = Buffer.byteLength(text);
  entry.event_count = lines.length;
  entry.first_sequence_no = (lines[0]?.['sequence_no'] as number) ?? null;
  entry.last_sequence_no = (lines.at(-1)?.['sequence_no'] as number) ?? null;
  if (full) {
    const last = lines.at(-1) as Line;
    manifest.event_count = lines.length;
    manifest.to_sequence_no = last['sequence_no'] as number;
    manifest.last_record_hash = last['record_hash'] as string;
    manifest.first_record_hash = lines[0]?.['record_hash'] as string;
    manifest.chain_head = { sequence_no: manifest.to_sequence_no, record_hash: manifest.last_record_hash };
  }
  await writeFile(manifestFile, JSON.stringify(manifest, null, 2));
}

const encoder = new ChainEncoder();

/** Recomputes prev_hash/record_hash of every line from index `from` on, as a forger would. */
function rechain(lines: Line[], from = 0): void {
  for (let i = from; i < lines.length; i++) {
    const line = lines[i] as Line;
    line['prev_hash'] = i === 0 ? '0'.repeat(64) : (lines[i - 1] as Line)['record_hash'];
    const e = parseJsonlEvent(JSON.stringify(line), 'x', i + 1);
    line['record_hash'] = encoder.recordHash(e, e.sequence_no, e.prev_hash).toString('hex');
  }
}

/**
 * audit-trail's verdict on an export. For a JSON Lines export (without
 * --compare, which it does not implement) the independent Python verifier of
 * docs/examples must reach the same verdict: the same first bad sequence_no
 * and the same kind of problem.
 */
async function exportVerdict(dir: string, options: { store?: string; compare?: string } = {}): Promise<{ ok: boolean; seq: number | null; problem: string | null }> {
  const r = await verifyExport({
    dir,
    anchors: options.store === undefined ? undefined : [options.store],
    publicKeyFile,
    compareWith: options.compare === undefined ? undefined : [options.compare],
  });
  const verdict = { ok: r.ok, seq: r.firstBadSequenceNo, problem: r.problem };
  if (options.compare === undefined && pythonUnavailable() === null && (await readFile(path.join(dir, 'manifest.json'), 'utf8')).includes('"jsonl"')) {
    const anchors = options.store === undefined ? undefined : { storeDir: options.store.slice('file:'.length), publicKeyFile };
    const independent = await pythonVerdict(dir, anchors);
    expect({ ok: independent.ok, seq: independent.seq, problem: independent.problem }, `the Python verifier on ${dir}: ${independent.detail}`).toEqual(verdict);
    expect(independent.exitCode).toBe(verdict.ok ? 0 : 1);
    pythonVerdicts++;
  }
  return verdict;
}

const SMALL = { first: 1, middle: 4, last: 7 } as const;

describe('clean chains and exports verify clean', () => {
  it('in the database, with anchors, and as an export (both formats) with anchors', async () => {
    const { tenant, store } = await anchoredChain('clean');
    expect(await dbVerdict(tenant)).toEqual({ ok: true, seq: null, problem: null });
    expect(await dbVerdict(tenant, store)).toEqual({ ok: true, seq: null, problem: null });
    const dir = await exportOf(tenant);
    expect(await exportVerdict(dir, { store })).toEqual({ ok: true, seq: null, problem: null });
    const parquetDir = path.join(work, `parquet-${tenant}`);
    await exportTenant({ databaseUrl: db.url, tenant, outDir: parquetDir, format: 'parquet' });
    expect(await exportVerdict(parquetDir, { store, compare: dir })).toEqual({ ok: true, seq: null, problem: null });
  });
});

describe.each(POSITIONS)('tampering at the %s position', (position: Position) => {
  const p = SMALL[position];

  it('edited field', async () => {
    const tenant = await smallChain('edit');
    const dir = await exportOf(tenant);
    await tamper(client, `update audit_trail.events set reason = 'forged' where tenant_id = $1 and sequence_no = $2`, [tenant, p]);
    expect(await dbVerdict(tenant)).toMatchObject({ ok: false, seq: p, problem: 'hash mismatch' });
    const lines = await readLines(dir);
    (lines[p - 1] as Line)['reason'] = 'forged';
    await writeLines(dir, lines);
    expect(await exportVerdict(dir)).toMatchObject({ ok: false, seq: p, problem: 'hash mismatch' });
  });

  it('deleted event', async () => {
    const tenant = await smallChain('delete');
    const dir = await exportOf(tenant);
    await tamper(client, `delete from audit_trail.events where tenant_id = $1 and sequence_no = $2`, [tenant, p]);
    const expected = position === 'last' ? 'truncated' : 'gap';
    expect(await dbVerdict(tenant)).toMatchObject({ ok: false, seq: p, problem: expected });
    const lines = await readLines(dir);
    lines.splice(p - 1, 1);
    await writeLines(dir, lines);
    expect(await exportVerdict(dir)).toMatchObject({ ok: false, seq: p, problem: expected });
  });

  it('inserted forged event', async () => {
    const tenant = await smallChain('forge');
    const dir = await exportOf(tenant);
    // A forged event at position p with a valid hash over its predecessor (the last: appended after the head).
    const seq = position === 'last' ? 8 : p;
    await tamper(
      client,
      `insert into audit_trail.events
       select audit_trail.new_ulid(), tenant_id, $2, occurred_at, ingested_at, actor_type, 'forger', actor_name, auth_method,
              source_ip, user_agent_hash, action, resource_type, resource_id, parent_type, parent_id, changes, 'forged', context,
              db_identity, 1, prev_hash, record_hash
         from audit_trail.events where tenant_id = $1 and sequence_no = $3`,
      [tenant, seq, Math.min(p, 7)],
    );
    await tamper(
      client,
      `update audit_trail.events e set prev_hash = coalesce((select record_hash from audit_trail.events p where p.tenant_id = e.tenant_id and p.sequence_no = e.sequence_no - 1 and p.actor_id <> 'forger'), audit_trail.genesis_hash()),
              record_hash = audit_trail.chain_hash(audit_trail.encode_body(event_id, tenant_id, occurred_at, ingested_at, actor_type, actor_id, actor_name, auth_method, source_ip, user_agent_hash, action, resource_type, resource_id, parent_type, parent_id, changes, reason, context, db_identity), sequence_no,
                coalesce((select record_hash from audit_trail.events p where p.tenant_id = e.tenant_id and p.sequence_no = e.sequence_no - 1 and p.actor_id <> 'forger'), audit_trail.genesis_hash()))
        where tenant_id = $1 and actor_id = 'forger'`,
      [tenant],
    );
    expect(await dbVerdict(tenant)).toMatchObject({ ok: false, seq, problem: position === 'last' ? 'head mismatch' : 'duplicate' });
    const lines = await readLines(dir);
    const forged: Line = { ...(lines[Math.min(p, 7) - 1] as Line), sequence_no: seq, actor_id: 'forger', reason: 'forged' };
    if (position === 'last') lines.push(forged);
    else lines.splice(p, 0, forged);
    forged['prev_hash'] = seq === 1 ? '0'.repeat(64) : (lines[seq - 2] as Line)['record_hash'];
    const e = parseJsonlEvent(JSON.stringify(forged), 'x', 1);
    forged['record_hash'] = encoder.recordHash(e, e.sequence_no, e.prev_hash).toString('hex');
    await writeLines(dir, lines);
    expect(await exportVerdict(dir)).toMatchObject({ ok: false, seq, problem: position === 'last' ? 'manifest mismatch' : 'duplicate' });
  });

  it('reordered events', async () => {
    const tenant = await smallChain('reorder');
    const dir = await exportOf(tenant);
    const a = position === 'last' ? 6 : p;
    await tamper(
      client,
      `update audit_trail.events set sequence_no = case sequence_no when $2::bigint then $2::bigint + 1 else $2::bigint end
        where tenant_id = $1 and sequence_no in ($2::bigint, $2::bigint + 1)`,
      [tenant, a],
    );
    expect(await dbVerdict(tenant)).toMatchObject({ ok: false, seq: a, problem: 'hash mismatch' });
    const lines = await readLines(dir);
    const [x, y] = [lines[a - 1] as Line, lines[a] as Line];
    lines[a - 1] = y;
    lines[a] = x;
    await writeLines(dir, lines);
    expect(await exportVerdict(dir)).toMatchObject({ ok: false, seq: a, problem: 'out of order' });
  });

  it('duplicate event', async () => {
    const tenant = await smallChain('duplicate');
    const dir = await exportOf(tenant);
    await tamper(client, `insert into audit_trail.events select * from audit_trail.events where tenant_id = $1 and sequence_no = $2`, [tenant, p]);
    expect(await dbVerdict(tenant)).toMatchObject({ ok: false, seq: p, problem: 'duplicate' });
    const lines = await readLines(dir);
    lines.splice(p, 0, { ...(lines[p - 1] as Line) });
    await writeLines(dir, lines);
    expect(await exportVerdict(dir)).toMatchObject({ ok: false, seq: p, problem: 'duplicate' });
  });

  it('event moved to another tenant', async () => {
    const tenant = await smallChain('move');
    const dir = await exportOf(tenant);
    await tamper(client, `update audit_trail.events set tenant_id = $3 where tenant_id = $1 and sequence_no = $2`, [tenant, p, `${tenant}_other`]);
    expect(await dbVerdict(tenant)).toMatchObject({ ok: false, seq: p, problem: position === 'last' ? 'truncated' : 'gap' });
    const lines = await readLines(dir);
    (lines[p - 1] as Line)['tenant_id'] = `${tenant}_other`;
    await writeLines(dir, lines);
    expect(await exportVerdict(dir)).toMatchObject({ ok: false, seq: p, problem: 'hash mismatch' });
  });

  it('export file edited with the whole manifest recomputed', async () => {
    const tenant = await smallChain('manifest');
    const dir = await exportOf(tenant);
    const lines = await readLines(dir);
    (lines[p - 1] as Line)['changes'] = '[{"after": 99, "field": "quantity", "before": 0}]';
    await writeLines(dir, lines, true);
    expect(await exportVerdict(dir)).toMatchObject({ ok: false, seq: p, problem: 'hash mismatch' });
  });

  it('two exports showing different histories of the same range (split view)', async () => {
    const tenant = await smallChain('split');
    const honest = await exportOf(tenant);
    const forged = await exportOf(tenant);
    const lines = await readLines(forged);
    (lines[p - 1] as Line)['reason'] = 'a different history';
    rechain(lines, p - 1);
    await writeLines(forged, lines, true);
    // Each export is consistent in itself; side by side they are not.
    expect(await exportVerdict(forged)).toEqual({ ok: true, seq: null, problem: null });
    expect(await exportVerdict(honest, { compare: forged })).toMatchObject({ ok: false, seq: p, problem: 'split view' });
    expect(await exportVerdict(forged, { compare: honest })).toMatchObject({ ok: false, seq: p, problem: 'split view' });
  });

  it('a compared export that is not intact itself is reported, not taken as agreeing', async () => {
    const tenant = await smallChain('compared');
    const honest = await exportOf(tenant);
    // Edited in place and its manifest recomputed, the hashes left as they were.
    const edited = await exportOf(tenant);
    const lines = await readLines(edited);
    (lines[p - 1] as Line)['reason'] = 'rewritten after the fact';
    await writeLines(edited, lines, true);
    expect(await exportVerdict(honest, { compare: edited })).toMatchObject({ ok: false, seq: p, problem: 'hash mismatch' });
    // ... named as the broken one: the first export checked clean.
    expect((await verifyExport({ dir: honest, compareWith: [edited] })).comparedExport).toBe(edited);
    expect(await exportVerdict(edited, { compare: honest })).toMatchObject({ ok: false, seq: p, problem: 'hash mismatch' });
    expect((await verifyExport({ dir: edited, compareWith: [honest] })).comparedExport).toBeNull();
    // One event deleted. (The last: an export that ends one event early, which only a checkpoint shows.)
    if (position !== 'last') {
      const shortened = await exportOf(tenant);
      const kept = await readLines(shortened);
      kept.splice(p - 1, 1);
      await writeLines(shortened, kept, true);
      expect(await exportVerdict(honest, { compare: shortened })).toMatchObject({ ok: false, seq: p, problem: 'gap' });
    }
  });

  const cut = { first: 1, middle: 6, last: 11 }[position];

  it('tail truncated after an anchor (head rewound)', async () => {
    const { tenant, store } = await anchoredChain('truncate');
    await tamper(client, `delete from audit_trail.events where tenant_id = $1 and sequence_no >= $2`, [tenant, cut]);
    await tamper(
      client,
      `update audit_trail.chain_heads set sequence_no = $2 - 1,
              record_hash = coalesce((select record_hash from audit_trail.events where tenant_id = $1 and sequence_no = $2 - 1), audit_trail.genesis_hash())
        where tenant_id = $1`,
      [tenant, cut],
    );
    // The chain alone cannot tell.
    expect((await dbVerdict(tenant)).problem).not.toBe('hash mismatch');
    expect(await dbVerdict(tenant, store)).toMatchObject({ ok: false, seq: cut, problem: 'truncated' });
    if (cut > 1) {
      const dir = await exportOf(tenant);
      expect(await exportVerdict(dir)).toEqual({ ok: true, seq: null, problem: null });
      expect(await exportVerdict(dir, { store })).toMatchObject({ ok: false, seq: cut, problem: 'truncated' });
    }
    // And anchoring again is an alarm, not a checkpoint.
    const run = await anchorAll({ databaseUrl: db.url, stores: [store], keyFile, tenant });
    expect(run.tenants[0]).toMatchObject({ status: 'alarm', alarmCode: 'AT020' });
  });

  it('whole chain recomputed from genesis after an anchor', async () => {
    const { tenant, store } = await anchoredChain('recompute');
    const honest = await exportOf(tenant);
    await tamper(client, `update audit_trail.events set reason = 'rewritten' where tenant_id = $1 and sequence_no = $2`, [tenant, cut]);
    await recomputeChain(client, tenant);
    expect(await dbVerdict(tenant)).toEqual({ ok: true, seq: null, problem: null });
    const at = CHECKPOINT_AT[position];
    expect(await dbVerdict(tenant, store)).toMatchObject({ ok: false, seq: at, problem: 'anchor mismatch' });
    const dir = await exportOf(tenant);
    expect(await exportVerdict(dir)).toEqual({ ok: true, seq: null, problem: null });
    expect(await exportVerdict(dir, { store })).toMatchObject({ ok: false, seq: at, problem: 'anchor mismatch' });
    // An earlier honest export pins the exact event.
    expect(await exportVerdict(dir, { compare: honest })).toMatchObject({ ok: false, seq: cut, problem: 'split view' });
    const run = await anchorAll({ databaseUrl: db.url, stores: [store], keyFile, tenant });
    expect(run.tenants[0]).toMatchObject({ status: 'alarm', alarmCode: 'AT021' });
  });

  const at = CHECKPOINT_AT[position];

  async function checkpointFile(store: string, tenant: string): Promise<string> {
    const { readdir } = await import('node:fs/promises');
    const dir = path.join(store.slice('file:'.length), encodeURIComponent(tenant));
    const name = (await readdir(dir)).find((n) => n.startsWith(String(at).padStart(19, '0')));
    return path.join(dir, name as string);
  }

  it('checkpoint signed with another key', async () => {
    const { tenant, store } = await anchoredChain('otherkey');
    const file = await checkpointFile(store, tenant);
    const original = JSON.parse(await readFile(file, 'utf8')) as { checkpoint: Checkpoint };
    const other = await loadPrivateKey(otherKeyFile);
    const { keyIdOf } = await import('../../src/anchor/keys.ts');
    const { createPublicKey } = await import('node:crypto');
    const forged = signCheckpoint({ ...original.checkpoint, key_id: keyIdOf(createPublicKey(other)) }, other);
    await chmod(file, 0o644);
    await rm(file);
    await writeFile(file, JSON.stringify(forged));
    expect(await dbVerdict(tenant, store)).toMatchObject({ ok: false, seq: at, problem: 'bad checkpoint' });
    const dir = await exportOf(tenant);
    expect(await exportVerdict(dir, { store })).toMatchObject({ ok: false, seq: at, problem: 'bad checkpoint' });
  });

  it('checkpoint edited', async () => {
    const { tenant, store } = await anchoredChain('editcp');
    const file = await checkpointFile(store, tenant);
    const published = JSON.parse(await readFile(file, 'utf8')) as { checkpoint: { anchored_at: string } };
    published.checkpoint.anchored_at = isoFromMicros(0n).replace('.000000Z', '.000Z');
    await chmod(file, 0o644);
    await writeFile(file, JSON.stringify(published));
    expect(await dbVerdict(tenant, store)).toMatchObject({ ok: false, seq: at, problem: 'bad checkpoint' });
    const dir = await exportOf(tenant);
    expect(await exportVerdict(dir, { store })).toMatchObject({ ok: false, seq: at, problem: 'bad checkpoint' });
  });
});

describe('a superuser who also edits audit_trail.anchors', () => {
  it('cannot get the key to sign a rewritten history: anchor compares the listed checkpoint with the stores (AT021)', async () => {
    const { tenant, store } = await anchoredChain('anchors_edit');
    await tamper(client, `update audit_trail.events set reason = 'rewritten' where tenant_id = $1 and sequence_no = 6`, [tenant]);
    await recomputeChain(client, tenant);
    // The last listed checkpoint (at 11) made to agree with the rewritten chain.
    await tamper(
      client,
      `update audit_trail.anchors a set record_hash = e.record_hash from audit_trail.events e
        where a.tenant_id = $1 and e.tenant_id = a.tenant_id and e.sequence_no = a.sequence_no and a.sequence_no = 11`,
      [tenant],
    );
    await recordEvents(client, tenant, simpleEvents(1));
    const run = await anchorAll({ databaseUrl: db.url, stores: [store], keyFile, tenant });
    expect(run.tenants[0]).toMatchObject({ status: 'alarm', alarmCode: 'AT021' });
    expect(run.tenants[0]?.detail).toMatch(/audit_trail\.anchors was edited/);
    expect(await dbVerdict(tenant, store)).toMatchObject({ ok: false, problem: 'anchor mismatch' });
  });
});
