/**
 * The `audit-trail` command line. Exit codes: 0 success, 1 a chain is broken
 * (verify), 2 any error (bad input, connection, SQL).
 */
import { parseArgs, type ParseArgsConfig } from 'node:util';
import { z } from 'zod';
import { AuditTrailError, DatabaseError, NotUtf8Error, UsageError, errorLines, toAuditTrailError } from '../errors.ts';
import { migrate, pendingMigrations, printSql } from '../db/migrate.ts';
import { enable, disable } from '../db/capture.ts';
import { verify, type ChainVerification } from '../db/verify.ts';
import { exportTenant } from '../export/export.ts';
import { downloadExport, isRemote, uploadExport } from '../export/remote.ts';
import { mkdtemp, rm } from 'node:fs/promises';
import { availableParallelism, tmpdir } from 'node:os';
import path from 'node:path';
import { verifyExport, type ExportVerification } from '../export/verify_export.ts';
import { generateKeys, loadPrivateKey } from '../anchor/keys.ts';
import { anchorAll, checkStores, type AnchorRun } from '../anchor/anchor.ts';
import { verifyWithAnchors } from '../anchor/verify_database.ts';
import { openStore, type ImmutabilityReport } from '../anchor/stores.ts';
import type { ExportManifest } from '../export/manifest.ts';
import { runDemo } from '../demo/run_demo.ts';
import { formatHeader, formatStep, formatSummary } from '../demo/terminal_output.ts';

export interface Io {
  stdout: (text: string) => void;
  stderr: (text: string) => void;
}

const processIo: Io = {
  stdout: (text) => process.stdout.write(text),
  stderr: (text) => process.stderr.write(text),
};

type Options = NonNullable<ParseArgsConfig['options']>;

interface Command {
  summary: string;
  usage: string;
  options: Options;
  allowPositionals: boolean;
  run: (values: Record<string, unknown>, positionals: string[], io: Io) => Promise<number>;
}

const connectionOptions = {
  'database-url': { type: 'string' },
  json: { type: 'boolean' },
  help: { type: 'boolean', short: 'h' },
} satisfies Options;

const connectionHelp = `  --database-url URL   connection string (default: $DATABASE_URL)
  --json               print the result as one JSON object
  -h, --help           show this help`;

const databaseUrl = z.string().min(1, 'must not be empty').optional();

/** Validates parsed options with zod and turns the first problem into a UsageError naming the option. */
function validate<T extends z.ZodType>(schema: T, values: unknown): z.infer<T> {
  const result = schema.safeParse(values);
  if (result.success) return result.data;
  const issue = result.error.issues[0];
  const where = issue?.path.length ? `--${issue.path.join('.')}` : 'options';
  throw new UsageError(`${where}: ${issue?.message ?? 'invalid value'}`);
}

function printJson(io: Io, value: unknown): void {
  io.stdout(`${JSON.stringify(value, null, 2)}\n`);
}

const migrateCommand: Command = {
  summary: 'install or upgrade the audit_trail schema',
  usage: `Usage: audit-trail migrate [options]

Applies every pending migration in one transaction. Safe to run repeatedly and
concurrently (an advisory lock serialises migrators). Refuses PostgreSQL older
than 15 and SQL_ASCII databases.

Options:
  --print-sql          print the whole install as one SQL script for psql,
                       Flyway or Liquibase, and connect to nothing
  --dry-run            list the pending migrations without applying them
${connectionHelp}`,
  options: { ...connectionOptions, 'print-sql': { type: 'boolean' }, 'dry-run': { type: 'boolean' } },
  allowPositionals: false,
  async run(values, _positionals, io) {
    const opts = validate(
      z
        .object({
          'database-url': databaseUrl,
          json: z.boolean().default(false),
          'print-sql': z.boolean().default(false),
          'dry-run': z.boolean().default(false),
        })
        .refine((o) => !(o['print-sql'] && o['dry-run']), { message: '--print-sql and --dry-run exclude each other', path: ['dry-run'] }),
      values,
    );
    if (opts['print-sql']) {
      const sql = await printSql();
      if (opts.json) printJson(io, { ok: true, sql });
      else io.stdout(sql);
      return 0;
    }
    const connection = { databaseUrl: opts['database-url'] };
    if (opts['dry-run']) {
      const pending = await pendingMigrations(connection);
      if (opts.json) printJson(io, { ok: true, dryRun: true, pending });
      else if (pending.length === 0) io.stdout('the schema is up to date; nothing to apply\n');
      else io.stdout(`pending migrations (not applied):\n${pending.map((n) => `  ${n}\n`).join('')}`);
      return 0;
    }
    const applied = await migrate(connection);
    if (opts.json) printJson(io, { ok: true, applied });
    else if (applied.length === 0) io.stdout('the schema is up to date; nothing to apply\n');
    else io.stdout(`applied:\n${applied.map((n) => `  ${n}\n`).join('')}`);
    return 0;
  },
};

const enableCommand: Command = {
  summary: 'turn capture on for a table (again: update its options)',
  usage: `Usage: audit-trail enable <table> [options]

Calls audit_trail.enable(table, options). <table> is resolved by PostgreSQL:
orders, mes.orders, 'mes."Orders"'.

Options:
  --options JSON       capture options as a JSON object, e.g.
                       '{"tenant_column":"plant_id","hard_delete":"forbid"}'
${connectionHelp}`,
  options: { ...connectionOptions, options: { type: 'string' } },
  allowPositionals: true,
  async run(values, positionals, io) {
    const table = oneTable(positionals);
    const opts = validate(
      z.object({
        'database-url': databaseUrl,
        json: z.boolean().default(false),
        options: z
          .string()
          .default('{}')
          .transform((text, ctx) => {
            let parsed: unknown;
            try {
              parsed = JSON.parse(text);
            } catch (err) {
              ctx.addIssue({ code: 'custom', message: `is not valid JSON (${(err as Error).message})` });
              return z.NEVER;
            }
            if (jsonDepth(parsed) > 32) {
              ctx.addIssue({ code: 'custom', message: 'is nested more than 32 levels deep: no capture option is' });
              return z.NEVER;
            }
            return parsed;
          })
          .pipe(z.record(z.string(), z.unknown(), { error: 'must be a JSON object' })),
      }),
      values,
    );
    await enable(table, opts.options, { databaseUrl: opts['database-url'] });
    if (opts.json) printJson(io, { ok: true, table, options: opts.options });
    else io.stdout(`capture enabled on ${table}\n`);
    return 0;
  },
};

const disableCommand: Command = {
  summary: 'turn capture off for a table, with a reason',
  usage: `Usage: audit-trail disable <table> --reason TEXT [options]

Calls audit_trail.disable(table, reason); the reason is recorded.

Options:
  --reason TEXT        why capture stops (required)
${connectionHelp}`,
  options: { ...connectionOptions, reason: { type: 'string' } },
  allowPositionals: true,
  async run(values, positionals, io) {
    const table = oneTable(positionals);
    const opts = validate(
      z.object({
        'database-url': databaseUrl,
        json: z.boolean().default(false),
        reason: z.string({ error: 'is required' }).trim().min(1, 'must not be empty'),
      }),
      values,
    );
    await disable(table, opts.reason, { databaseUrl: opts['database-url'] });
    if (opts.json) printJson(io, { ok: true, table });
    else io.stdout(`capture disabled on ${table}\n`);
    return 0;
  },
};

/** How deeply a parsed JSON value nests (without recursion: a hostile value may nest thousands deep). */
function jsonDepth(value: unknown): number {
  let deepest = 0;
  const stack: Array<[unknown, number]> = [[value, 1]];
  while (stack.length > 0) {
    const [v, depth] = stack.pop() as [unknown, number];
    if (typeof v !== 'object' || v === null) continue;
    deepest = Math.max(deepest, depth);
    if (deepest > 32) break;
    for (const child of Object.values(v)) stack.push([child, depth + 1]);
  }
  return deepest;
}

const sequenceNo = z
  .string()
  .regex(/^[1-9][0-9]*$/, 'must be a positive integer')
  // (beyond 2^53 - 1 a number would be rounded to another one)
  .refine((t) => t.length < 16 || BigInt(t) <= BigInt(Number.MAX_SAFE_INTEGER), 'must be at most 9007199254740991')
  .transform(Number)
  .optional();

const verifyCommand: Command = {
  summary: 'check the hash chain in the database, or an export with no database',
  usage: `Usage: audit-trail verify [options]
       audit-trail verify --export DIR [--tenant T] [--anchors STORE --public-key FILE] [--compare DIR2]

In the database: calls audit_trail.verify() for the tenant, or for every tenant
that has events; with --anchors also checks the chain against the signed
checkpoints (finds a truncated tail or a chain recomputed from genesis).
With --export: verifies an export offline (no database): every record_hash,
every link, sequence continuity, the manifest and the SHA-256 of every file.
Prints one line per tenant and exits 1 if anything is broken.

Options:
  --tenant T           verify this tenant only (database); with --export, the
                       tenant the export must be of (else: wrong tenant)
  --from-seq N         first sequence_no to check (default 1; database, no anchors)
  --to-seq M           last sequence_no to check (default: the newest)
  --export DIR         verify the export in DIR (or s3://bucket/prefix) instead
                       of the database
  --compare DIR2       (with --export) another export of the tenant, verified as
                       fully as DIR: report a split view (different histories of
                       the same range) or DIR2's own first problem; repeatable
  --anchors STORE      file:DIR or s3://bucket/prefix holding checkpoints; repeatable.
                       With --export: an export that no checkpoint falls within
                       is reported "not anchored" (exit 1)
  --public-key FILE    public key (PEM) that signed the checkpoints
  --jobs N             (with --export) threads that decode and hash the events
                       (default: the number of CPUs available); 1 verifies
                       on one thread. The native core (built by npm install
                       where a C compiler is; AUDIT_TRAIL_NATIVE=0 turns it
                       off) does it when present, else TypeScript; --json
                       says which (decoded_by)
${connectionHelp}`,
  options: {
    ...connectionOptions,
    tenant: { type: 'string' },
    jobs: { type: 'string' },
    'from-seq': { type: 'string' },
    'to-seq': { type: 'string' },
    export: { type: 'string' },
    compare: { type: 'string', multiple: true },
    anchors: { type: 'string', multiple: true },
    'public-key': { type: 'string' },
  },
  allowPositionals: false,
  async run(values, _positionals, io) {
    const opts = validate(
      z
        .object({
          'database-url': databaseUrl,
          json: z.boolean().default(false),
          tenant: z.string().min(1, 'must not be empty').optional(),
          'from-seq': sequenceNo,
          'to-seq': sequenceNo,
          export: z.string().min(1, 'must not be empty').optional(),
          compare: z.array(z.string().min(1)).optional(),
          anchors: z.array(z.string().min(1)).optional(),
          'public-key': z.string().min(1, 'must not be empty').optional(),
          jobs: z.string().regex(/^[1-9][0-9]{0,2}$/, 'must be a whole number from 1 to 999').transform(Number).optional(),
        })
        .refine((o) => o.jobs === undefined || o.export !== undefined, { message: 'needs --export', path: ['jobs'] })
        .refine((o) => o['to-seq'] === undefined || o['to-seq'] >= (o['from-seq'] ?? 1), {
          message: 'must not be smaller than --from-seq',
          path: ['to-seq'],
        })
        .refine((o) => o.anchors === undefined || o['public-key'] !== undefined, {
          message: 'is required with --anchors (the public key that signed the checkpoints)',
          path: ['public-key'],
        })
        .refine((o) => o['public-key'] === undefined || o.anchors !== undefined, {
          message: 'checks checkpoints: give the anchor store with --anchors STORE (without it nothing would be checked against the key)',
          path: ['public-key'],
        })
        .refine((o) => o.export === undefined || (o['from-seq'] === undefined && o['to-seq'] === undefined), {
          message: 'verifies the whole export: --from-seq and --to-seq do not apply (--tenant names the tenant the export must be of)',
          path: ['export'],
        })
        .refine((o) => o.compare === undefined || o.export !== undefined, { message: 'needs --export', path: ['compare'] })
        .refine((o) => o.anchors === undefined || (o['from-seq'] === undefined && o['to-seq'] === undefined), {
          message: 'checks whole chains: --from-seq and --to-seq do not apply',
          path: ['anchors'],
        }),
      values,
    );
    if (opts.export !== undefined) {
      const progress = progressReporter(io, opts.json, 'verified');
      const downloaded: string[] = [];
      const overwritten: string[] = [];
      const local = async (location: string): Promise<string> => {
        if (!isRemote(location)) return location;
        const { dir, overwritten: over } = await downloadExport(location);
        downloaded.push(dir);
        overwritten.push(...over);
        return dir;
      };
      let result: ExportVerification;
      try {
        const compare: string[] = [];
        for (const c of opts.compare ?? []) compare.push(await local(c));
        result = await verifyExport({
          dir: await local(opts.export),
          anchors: opts.anchors,
          publicKeyFile: opts['public-key'],
          compareWith: compare,
          onProgress: progress.update,
          // (more threads than cores only cost memory and time)
          jobs: opts.jobs === undefined ? undefined : Math.min(opts.jobs, availableParallelism()),
        });
        result.dir = opts.export;
        if (opts.tenant !== undefined && result.tenantId !== opts.tenant && (result.ok || result.problem !== 'wrong tenant')) {
          // The tenant the auditor expects, not only the one the manifest claims (a look-alike id would pass otherwise).
          result = { ...result, ok: false, firstBadSequenceNo: result.fromSequenceNo, problem: 'wrong tenant', detail: `this is an export of tenant ${JSON.stringify(result.tenantId)}, not ${JSON.stringify(opts.tenant)}`, file: null };
        }
        if (overwritten.length > 0 && result.ok) {
          // The first versions verified, but someone wrote over them in the bucket.
          result = { ...result, ok: false, problem: 'overwritten object', detail: overwritten.join('; '), file: overwritten[0]!.split(': ')[0]! };
        }
      } finally {
        for (const d of downloaded) await rm(d, { recursive: true, force: true });
      }
      progress.done();
      if (opts.json) printJson(io, { ok: result.ok, export: exportVerificationJson(result) });
      else {
        io.stdout(`${exportVerificationLine(result)}\n`);
        for (const r of result.immutability) io.stdout(`${immutabilityLine(r)}\n`);
      }
      return result.ok ? 0 : 1;
    }
    if (opts.anchors !== undefined) {
      const { tenants, immutability } = await verifyWithAnchors({
        databaseUrl: opts['database-url'],
        tenant: opts.tenant,
        anchors: opts.anchors,
        publicKeyFile: opts['public-key'] as string,
      });
      const ok = tenants.every((r) => r.ok);
      if (opts.json) {
        printJson(io, {
          ok,
          tenants: tenants.map((t) => ({ ...verificationJson(t), checkpoints_checked: t.checkpointsChecked })),
          stores: immutability,
        });
      } else {
        for (const r of tenants) io.stdout(`${verificationLine(r)}${r.ok ? checkpointsNote(r.checkpointsChecked) : ''}\n`);
        for (const r of immutability) io.stdout(`${immutabilityLine(r)}\n`);
      }
      return ok ? 0 : 1;
    }
    const results = await verify({
      databaseUrl: opts['database-url'],
      tenant: opts.tenant,
      fromSeq: opts['from-seq'],
      toSeq: opts['to-seq'],
    });
    const unknown = opts.tenant === undefined ? undefined : results.find((r) => r.problem === 'not found');
    if (unknown !== undefined) {
      throw new DatabaseError(`tenant ${opts.tenant} has no events and no chain head visible to this role`, {
        code: '42704',
        hint: 'Check the tenant id (audit-trail verify without --tenant lists every tenant); readers need audit_trail.grant_tenant_read(). A chain deleted whole (events and head) looks the same: verify --anchors tells, from its checkpoints.',
      });
    }
    const ok = results.every((r) => r.ok);
    if (opts.json) {
      printJson(io, { ok, tenants: results.map(verificationJson) });
    } else if (results.length === 0) {
      io.stdout('no tenant\'s chain is visible to this role (none has events yet, or the role reads none); nothing to verify\n');
    } else {
      for (const r of results) io.stdout(`${verificationLine(r)}\n`);
    }
    return ok ? 0 : 1;
  },
};

/** What the checkpoints said, for an OK line: how many matched, or that there were none to check. */
function checkpointsNote(n: number): string {
  return n > 0 ? `, ${n} checkpoint(s) match` : '; NO checkpoint of this tenant in the stores: nothing was checked against anchors';
}

function exportVerificationLine(r: ExportVerification): string {
  const range = r.fromSequenceNo === null ? 'no events' : `sequence_no ${r.fromSequenceNo} to ${r.toSequenceNo}`;
  // (with anchors and none within the range, the export is not OK: "not anchored")
  const anchors = r.checkpointsChecked > 0 ? `, ${r.checkpointsChecked} checkpoint(s) match` : '';
  const beyond =
    r.checkpointBeyond === null
      ? ''
      : `; NOTE: checkpoints vouch for events up to sequence_no ${r.checkpointBeyond}, beyond this export's end (${r.toSequenceNo}): those events are not in it, and only the manifest (which nothing signs) says it was a range or made before them`;
  if (r.ok) return `${r.tenantId}: export ${r.dir} OK (${r.eventsChecked} events checked, ${range}${anchors})${beyond}`;
  const where = r.firstBadSequenceNo === null ? '' : ` at sequence_no ${r.firstBadSequenceNo}`;
  // A compared export that is not intact is named as the broken one; the export itself checked clean.
  const subject = r.comparedExport === null ? `export ${r.dir}` : `export ${r.comparedExport} (compared with ${r.dir}, which checked clean)`;
  return `${r.tenantId}: ${subject} BROKEN${where}: ${r.problem ?? 'unknown problem'}, ${r.detail ?? ''}${r.file === null ? '' : ` (file ${r.file})`}`;
}

function exportVerificationJson(r: ExportVerification): Record<string, unknown> {
  return {
    dir: r.dir,
    tenant_id: r.tenantId,
    events_checked: r.eventsChecked,
    from_sequence_no: r.fromSequenceNo,
    to_sequence_no: r.toSequenceNo,
    ok: r.ok,
    first_bad_sequence_no: r.firstBadSequenceNo,
    problem: r.problem,
    detail: r.detail,
    file: r.file,
    checkpoints_checked: r.checkpointsChecked,
    checkpoint_beyond_export: r.checkpointBeyond,
    compared_export: r.comparedExport,
    stores: r.immutability,
    // native: native/verify_native.c decoded and hashed the events; typescript: the TypeScript path alone (why_not_native says why)
    decoded_by: r.core.core,
    ...(r.core.core === 'typescript' ? { why_not_native: r.core.why } : {}),
  };
}

function immutabilityLine(r: ImmutabilityReport): string {
  return `store ${r.store}: ${r.detail}`;
}

/** A one-line progress indicator on a terminal (stderr); silent with --json or when not a TTY. */
function progressReporter(io: Io, json: boolean, verb: string): { update: (n: number, total: number) => void; done: () => void } {
  const tty = !json && io === processIo && process.stderr.isTTY === true;
  let shown = false;
  let lastDraw = 0;
  return {
    update(n, total) {
      if (!tty) return;
      const now = Date.now();
      if (now - lastDraw < 100 && n < total) return;
      lastDraw = now;
      const pct = total > 0 ? Math.min(100, Math.floor((n / total) * 100)) : 100;
      const width = 30;
      const filled = Math.round((pct / 100) * width);
      process.stderr.write(`\r[${'#'.repeat(filled)}${'.'.repeat(width - filled)}] ${pct}% ${n}/${total} events ${verb}`);
      shown = true;
    },
    done() {
      if (shown) process.stderr.write('\n');
    },
  };
}

const exportCommand: Command = {
  summary: 'export a tenant\'s events (Parquet or JSON Lines) with a manifest',
  usage: `Usage: audit-trail export --tenant T --out DIR [options]

Streams the tenant's events through a server-side cursor (constant memory)
into DIR: data files plus manifest.json (ranges, counts, first and last
record_hash, the SHA-256 of every file). DIR must be new or empty. Verify it
anywhere, with no database: audit-trail verify --export DIR.

Options:
  --tenant T           the tenant to export (required)
  --out DIR            directory to write (required); or s3://bucket/prefix to
                       upload the export with Object Lock COMPLIANCE
  --format F           parquet (default) or jsonl
  --from-seq N         first sequence_no (default 1)
  --to-seq M           last sequence_no (default: the chain head)
  --events-per-file N  start a new data file after N events (default 1000000)
${connectionHelp}`,
  options: {
    ...connectionOptions,
    tenant: { type: 'string' },
    out: { type: 'string' },
    format: { type: 'string' },
    'from-seq': { type: 'string' },
    'to-seq': { type: 'string' },
    'events-per-file': { type: 'string' },
  },
  allowPositionals: false,
  async run(values, _positionals, io) {
    const opts = validate(
      z
        .object({
          'database-url': databaseUrl,
          json: z.boolean().default(false),
          tenant: z.string({ error: 'is required' }).min(1, 'must not be empty'),
          out: z.string({ error: 'is required' }).min(1, 'must not be empty'),
          format: z.enum(['parquet', 'jsonl'], { error: 'must be parquet or jsonl' }).default('parquet'),
          'from-seq': sequenceNo,
          'to-seq': sequenceNo,
          'events-per-file': sequenceNo,
        })
        .refine((o) => o['to-seq'] === undefined || o['to-seq'] >= (o['from-seq'] ?? 1), {
          message: 'must not be smaller than --from-seq',
          path: ['to-seq'],
        }),
      values,
    );
    const progress = progressReporter(io, opts.json, 'exported');
    const remote = isRemote(opts.out);
    if (remote) {
      // A bad bucket name, an unreachable store or a prefix in use: said before the export, not after it.
      if ((await openStore(opts.out).list('')).length > 0) {
        throw new UsageError(`${opts.out} is not empty`, { hint: 'Export to a new prefix: an export is never overwritten or mixed with another.' });
      }
    }
    const outDir = remote ? path.join(await mkdtemp(path.join(tmpdir(), 'audit-trail-export-')), 'export') : opts.out;
    let manifest: ExportManifest;
    try {
      manifest = await exportTenant({
        databaseUrl: opts['database-url'],
        tenant: opts.tenant,
        outDir,
        format: opts.format,
        fromSeq: opts['from-seq'],
        toSeq: opts['to-seq'],
        eventsPerFile: opts['events-per-file'],
        onProgress: progress.update,
      });
      progress.done();
      if (remote) await uploadExport(outDir, opts.out);
    } finally {
      if (remote) await rm(path.dirname(outDir), { recursive: true, force: true });
    }
    if (opts.json) printJson(io, { ok: true, dir: opts.out, manifest });
    else {
      const range = manifest.from_sequence_no === null ? 'no events' : `sequence_no ${manifest.from_sequence_no} to ${manifest.to_sequence_no}`;
      io.stdout(`exported ${manifest.event_count} events of ${manifest.tenant_id} (${range}) to ${opts.out}: ${manifest.files.length} ${manifest.data_format} file(s) and manifest.json\n`);
      if (manifest.event_count === 0) io.stdout(`note: the chain of ${manifest.tenant_id} ends at sequence_no ${manifest.chain_head?.sequence_no ?? 0}; the range asked for holds no events\n`);
      io.stdout(`verify with: audit-trail verify --export ${opts.out}\n`);
    }
    return 0;
  },
};

const keysCommand: Command = {
  summary: 'generate the Ed25519 key pair that signs checkpoints',
  usage: `Usage: audit-trail keys generate --out DIR

Writes checkpoint-signing-key.pem (private, mode 0400) and
checkpoint-public-key.pem into DIR and prints the key id (hex of the first 16
bytes of SHA-256 of the raw public key). Never overwrites a key. Keep the
private key away from the database; give the public key to your auditors.

Options:
  --out DIR            directory for the two files (required)
  --json               print the result as one JSON object
  -h, --help           show this help`,
  options: { out: { type: 'string' }, json: { type: 'boolean' }, help: { type: 'boolean', short: 'h' } },
  allowPositionals: true,
  async run(values, positionals, io) {
    if (positionals.length !== 1 || positionals[0] !== 'generate') {
      throw new UsageError(`expected "keys generate", got "keys ${positionals.join(' ')}"`, { hint: 'audit-trail keys generate --out DIR' });
    }
    const opts = validate(z.object({ json: z.boolean().default(false), out: z.string({ error: 'is required' }).min(1, 'must not be empty') }), values);
    const keys = await generateKeys({ outDir: opts.out });
    if (opts.json) printJson(io, { ok: true, key_id: keys.keyId, private_key: keys.privateKeyFile, public_key: keys.publicKeyFile });
    else io.stdout(`key id ${keys.keyId}\nprivate key: ${keys.privateKeyFile}\npublic key:  ${keys.publicKeyFile}\n`);
    return 0;
  },
};

const intervalText = z
  .string()
  .regex(/^[1-9][0-9]*(s|m|h)$/, 'must be a duration such as 60s, 5m or 1h')
  .transform((t) => Number(t.slice(0, -1)) * ({ s: 1000, m: 60_000, h: 3_600_000 } as const)[t.slice(-1) as 's' | 'm' | 'h'])
  // (a timer cannot wait longer: Node runs a longer one at once, in a tight loop)
  .refine((ms) => ms <= 24 * 3_600_000, 'must be at most 24h (use cron for longer intervals)');

const anchorCommand: Command = {
  summary: 'sign a checkpoint of every tenant\'s chain head and publish it',
  usage: `Usage: audit-trail anchor --store STORE [--store STORE2] --key FILE [options]
       audit-trail anchor --check --store STORE

For each tenant, signs a checkpoint of its chain head (tenant, sequence_no,
record_hash, time, key id, previous checkpoint digest) with the Ed25519 key,
publishes it to every store and lists it in audit_trail.anchors (the anchoring
is itself an audit event). A chain head below the last checkpoint, or a chain
that no longer holds the last anchored hash, is an alarm: no checkpoint, exit 1.
Connect as a role that reads every tenant (the owner's login or a superuser).

Stores: file:DIR (write-once files, read-only after writing) or
s3://bucket/prefix (Object Lock COMPLIANCE; AWS_ENDPOINT_URL, AWS_REGION,
AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY from the environment).

Options:
  --store STORE        where to publish; repeatable (required)
  --key FILE           the private key (PEM) from audit-trail keys generate
  --tenant T           anchor this tenant only
  --every DURATION     keep running, anchoring every 60s / 5m / 1h; a pass that
                       fails is reported and the next one tried; SIGINT or
                       SIGTERM stops after the current pass; the exit code is
                       the worst of all passes
  --count N            with --every: stop after N passes
  --retention-days N   S3 Object Lock retention (default 3653)
  --check              only report whether each store enforces immutability;
                       exit 1 when one does not (a file: store never does)
${connectionHelp}`,
  options: {
    ...connectionOptions,
    store: { type: 'string', multiple: true },
    key: { type: 'string' },
    tenant: { type: 'string' },
    every: { type: 'string' },
    count: { type: 'string' },
    'retention-days': { type: 'string' },
    check: { type: 'boolean' },
  },
  allowPositionals: false,
  async run(values, _positionals, io) {
    const opts = validate(
      z
        .object({
          'database-url': databaseUrl,
          json: z.boolean().default(false),
          store: z.array(z.string().min(1), { error: 'is required' }).min(1),
          key: z.string().min(1).optional(),
          tenant: z.string().min(1).optional(),
          every: intervalText.optional(),
          count: sequenceNo,
          'retention-days': sequenceNo,
          check: z.boolean().default(false),
        })
        .refine((o) => o.check || o.key !== undefined, { message: 'is required (the private key that signs checkpoints)', path: ['key'] })
        .refine((o) => o.count === undefined || o.every !== undefined, { message: 'needs --every (it counts the passes of --every)', path: ['count'] }),
      values,
    );
    if (opts.check) {
      const reports = await checkStores(opts.store, { retentionDays: opts['retention-days'] });
      if (opts.json) printJson(io, { ok: reports.every((r) => r.enforced), stores: reports });
      else for (const r of reports) io.stdout(`${immutabilityLine(r)}\n`);
      return reports.every((r) => r.enforced) ? 0 : 1;
    }
    const once = async (): Promise<number> => {
      const run = await anchorAll({
        databaseUrl: opts['database-url'],
        stores: opts.store,
        keyFile: opts.key as string,
        tenant: opts.tenant,
        retentionDays: opts['retention-days'],
      });
      // With --every, one compact JSON document per pass and line (JSON Lines).
      printAnchorRun(io, opts.json, run, opts.every !== undefined);
      // A tenant that could not be anchored (a store or the database failing for it) is an error; an alarm is a finding.
      return run.tenants.some((t) => t.status === 'failed') ? 2 : run.tenants.some((t) => t.status === 'alarm') ? 1 : 0;
    };
    if (opts.every === undefined) return once();
    // What no later pass can mend is refused now, not retried forever: the key, the store URLs.
    await loadPrivateKey(opts.key as string);
    for (const url of opts.store) openStore(url);
    // Cron-less operation: a pass that fails (the database restarting, a store
    // unreachable) is reported and the next one tried; a signal ends the run
    // between passes, never in the middle of one.
    const stop = stopOnSignal();
    let worst = 0;
    try {
      for (let pass = 1; ; pass += 1) {
        try {
          worst = Math.max(worst, await once());
        } catch (err) {
          reportError(err, opts.json, io);
          worst = 2;
        }
        if (pass === opts.count || stop.requested()) break;
        await stop.sleep(opts.every);
        if (stop.requested()) break;
      }
    } finally {
      stop.dispose();
    }
    return worst;
  },
};

/** SIGINT/SIGTERM as a request to stop, and a sleep that such a request cuts short. */
function stopOnSignal(): { requested: () => boolean; sleep: (ms: number) => Promise<void>; dispose: () => void } {
  let requested = false;
  let wake: (() => void) | undefined;
  const onSignal = (): void => {
    requested = true;
    wake?.();
  };
  process.on('SIGINT', onSignal);
  process.on('SIGTERM', onSignal);
  return {
    requested: () => requested,
    sleep: (ms) =>
      new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, ms);
        wake = () => {
          clearTimeout(timer);
          resolve();
        };
      }),
    dispose: () => {
      process.off('SIGINT', onSignal);
      process.off('SIGTERM', onSignal);
    },
  };
}

function printAnchorRun(io: Io, json: boolean, run: AnchorRun, oneLine = false): void {
  if (json) {
    (oneLine ? (i: Io, v: unknown) => i.stdout(`${JSON.stringify(v)}\n`) : printJson)(io, {
      ok: run.tenants.every((t) => t.status !== 'alarm' && t.status !== 'failed'),
      key_id: run.keyId,
      tenants: run.tenants.map((t) => ({
        tenant_id: t.tenantId,
        status: t.status,
        sequence_no: t.sequenceNo,
        record_hash: t.recordHash,
        checkpoint_digest: t.checkpointDigest,
        object: t.object,
        alarm_code: t.alarmCode,
        detail: t.detail,
        ...(t.error !== undefined ? { error: t.error } : {}),
      })),
      stores: run.immutability,
    });
    return;
  }
  if (run.tenants.length === 0) io.stdout('no tenant\'s chain is visible to this role (none has events yet, or the role reads none); nothing to anchor\n');
  for (const t of run.tenants) {
    const head = `${t.tenantId} at sequence_no ${t.sequenceNo}`;
    if (t.status === 'alarm') io.stdout(`ALARM ${head} (${t.alarmCode}): ${t.detail}\n`);
    else if (t.status === 'failed') io.stdout(`FAILED ${head}: ${t.detail}\n`);
    else if (t.status === 'unchanged') io.stdout(`${head}: unchanged since the last checkpoint\n`);
    else io.stdout(`${head}: anchored, checkpoint ${t.checkpointDigest} (${t.object})\n`);
  }
  for (const r of run.immutability) io.stdout(`${immutabilityLine(r)}\n`);
}

function verificationLine(r: ChainVerification): string {
  if (r.ok) return `${r.tenantId}: OK (${r.eventsChecked} events checked)`;
  const detail = r.detail === null ? '' : `, ${r.detail}`;
  return `${r.tenantId}: BROKEN at sequence_no ${r.firstBadSequenceNo ?? '?'}: ${r.problem ?? 'unknown problem'}${detail}`;
}

// The SQL column names, so a JSON report reads like audit_trail.verify()'s result.
function verificationJson(r: ChainVerification): Record<string, unknown> {
  return {
    tenant_id: r.tenantId,
    events_checked: r.eventsChecked,
    ok: r.ok,
    first_bad_sequence_no: r.firstBadSequenceNo,
    problem: r.problem,
    detail: r.detail,
  };
}

function oneTable(positionals: string[]): string {
  if (positionals.length !== 1 || positionals[0] === undefined || positionals[0] === '') {
    throw new UsageError(positionals.length === 0 ? 'missing <table>' : `expected one <table>, got ${positionals.length}`);
  }
  return positionals[0];
}

const demoCommand: Command = {
  summary: 'see the audit trail find a superuser\'s tampering (embedded PostgreSQL, nothing to install)',
  usage: `Usage: audit-trail demo [options]

Runs the whole story on a PostgreSQL 17 server started in a temporary
directory (nothing to install; works as root and as a normal user): installs
the audit trail, creates a small MES schema (production orders, downtime
records), audits a shift of changes by three named operators with reasons,
refuses a shared login, signs a checkpoint into a local anchor store, then
tampers as a superuser would (triggers off, one event edited, one deleted) and
shows audit_trail.verify and the offline export check naming the broken
events. Takes a few seconds.

With --database-url or DATABASE_URL it uses that server instead: it creates a
fresh database audit_trail_demo_<random> there (the role must be a superuser,
since the demo tampers like one), drops it at the end and touches no other
database.

Exit codes: 0 the demo worked (the tampering was found), 1 a check gave an
unexpected result, 2 an error (the server could not start, bad options).

Options:
  --keep               leave the server and the demo database running, and the
                       keys, anchor store and exports in place; prints the
                       connection string and how to stop the server
  --format F           format of the exports: jsonl (default) or parquet
${connectionHelp}`,
  options: { ...connectionOptions, keep: { type: 'boolean' }, format: { type: 'string' } },
  allowPositionals: false,
  async run(values, _positionals, io) {
    const opts = validate(
      z.object({
        'database-url': databaseUrl,
        json: z.boolean().default(false),
        keep: z.boolean().default(false),
        format: z.enum(['parquet', 'jsonl'], { error: 'must be parquet or jsonl' }).default('jsonl'),
      }),
      values,
    );
    const fromEnv = process.env['DATABASE_URL'];
    const url = opts['database-url'] ?? (fromEnv !== undefined && fromEnv !== '' ? fromEnv : undefined);
    if (!opts.json) io.stdout(formatHeader());
    const report = await runDemo({
      databaseUrl: url,
      keep: opts.keep,
      format: opts.format,
      onStep: opts.json ? undefined : (step) => io.stdout(formatStep(step)),
    });
    if (opts.json) printJson(io, report);
    else {
      io.stdout(formatSummary(report));
      // The error that stopped it, on stderr like every command's.
      if (report.error !== null) io.stderr(errorLines(report.error));
    }
    if (report.ok) return 0;
    return report.error?.name === 'UnexpectedOutcome' || report.steps.some((s) => !s.ok) ? 1 : 2;
  },
};

const benchCommand: Command = {
  summary: 'measure capture, verification and storage against an unaudited baseline (same as npm run bench)',
  usage: `Usage: audit-trail bench [options]

Runs the benchmarks of bench/ (pgbench workloads: TPC-B-like with 100 tenants
and one hot tenant, a naive-trigger baseline, MES-like, bulk INSERT ... SELECT
and COPY, in-database verification, storage per event) on a PostgreSQL server
of its own (embedded PostgreSQL 17) or on --database-url / DATABASE_URL.
Baseline and audited runs are interleaved; every figure is printed next to its
baseline as a ratio, with the median, min and max of the runs. Writes
bench/results/latest.md and .json (quick.md and .json with --quick). Needs
pgbench and psql (Debian: apt-get install postgresql-client-15). Needs the
project's source tree (bench/ is not part of the installed package).

Options:
  --quick              short runs and small imports (under 3 minutes; a smoke test)
  --only LIST          comma-separated workloads: tpcb, mes, bulk, verify
  --reps N             runs per cell (default 3)
  --duration S         seconds per pgbench run (default 10, quick 1)
${connectionHelp}`,
  options: {
    ...connectionOptions,
    quick: { type: 'boolean' },
    only: { type: 'string' },
    reps: { type: 'string' },
    duration: { type: 'string' },
  },
  allowPositionals: false,
  async run(values, _positionals, io) {
    const opts = validate(
      z.object({
        'database-url': databaseUrl,
        json: z.boolean().default(false),
        quick: z.boolean().default(false),
        only: z
          .string()
          .regex(/^(tpcb|mes|bulk|verify)(,(tpcb|mes|bulk|verify))*$/, { error: 'must list tpcb, mes, bulk or verify, comma-separated' })
          .optional(),
        reps: z.coerce.number().int().min(1).max(20).optional(),
        duration: z.coerce.number().int().min(1).max(600).optional(),
      }),
      values,
    );
    // bench/ lives beside src/ in the source tree; it is not shipped in the package.
    const benchModule = new URL('../../bench/run.ts', import.meta.url);
    let runBench: (options: Record<string, unknown>) => Promise<unknown>;
    try {
      ({ runBench } = (await import(benchModule.href)) as { runBench: typeof runBench });
    } catch (err) {
      throw new UsageError(`the benchmarks are not available here (${benchModule.pathname})`, {
        hint: 'Run audit-trail bench from a clone of the source repository, where bench/ exists.',
        cause: err,
      });
    }
    const result = await runBench({
      quick: opts.quick,
      databaseUrl: opts['database-url'],
      workloads: opts.only?.split(','),
      reps: opts.reps,
      duration: opts.duration,
      log: opts.json ? (): void => undefined : (m: string): void => io.stdout(`${m}\n`),
    });
    if (opts.json) printJson(io, result);
    return 0;
  },
};

const commands: Record<string, Command> = {
  demo: demoCommand,
  migrate: migrateCommand,
  enable: enableCommand,
  disable: disableCommand,
  verify: verifyCommand,
  export: exportCommand,
  keys: keysCommand,
  anchor: anchorCommand,
  bench: benchCommand,
};

function globalHelp(): string {
  const width = Math.max(...Object.keys(commands).map((n) => n.length));
  const lines = Object.entries(commands).map(([name, c]) => `  ${name.padEnd(width)}  ${c.summary}`);
  return `Usage: audit-trail <command> [options]

Commands:
${lines.join('\n')}

Run audit-trail <command> --help for a command's options.
The database comes from --database-url or DATABASE_URL.
Exit codes: 0 success, 1 a verified chain is broken, 2 error.
`;
}

/** Prints an error as one line (plus detail and hint), or as JSON. */
export function reportError(err: unknown, json: boolean, io: Io): void {
  const error: AuditTrailError = toAuditTrailError(err);
  if (json) {
    printJson(io, { ok: false, error: error.toJSON() });
    return;
  }
  io.stderr(errorLines(error));
}

/** Refuses a command-line value that was not UTF-8 (NotUtf8Error). */
function refuseReplacementCharacters(values: Record<string, unknown>, positionals: string[]): void {
  for (const [name, value] of Object.entries(values)) {
    for (const text of Array.isArray(value) ? value : [value]) {
      if (typeof text === 'string') NotUtf8Error.refuseIn(`--${name}`, text);
    }
  }
  positionals.forEach((p, i) => NotUtf8Error.refuseIn(`argument ${i + 1}`, p));
}

/** Runs the CLI and returns the exit code; never throws. */
export async function main(argv: string[], io: Io = processIo): Promise<number> {
  const json = argv.includes('--json');
  try {
    const [name, ...rest] = argv;
    if (name === undefined || name === '--help' || name === '-h' || name === 'help') {
      (name === undefined ? io.stderr : io.stdout)(globalHelp());
      return name === undefined ? 2 : 0;
    }
    const command = commands[name];
    if (command === undefined) {
      throw new UsageError(`unknown command "${name}"`, { hint: `Commands: ${Object.keys(commands).join(', ')}.` });
    }
    let parsed: { values: Record<string, unknown>; positionals: string[] };
    try {
      parsed = parseArgs({ args: rest, options: command.options, allowPositionals: command.allowPositionals, strict: true });
    } catch (err) {
      // Node's message: the problem on its first line, sometimes advice after it (for
      // "--tenant --json": use --tenant=-XYZ for a value that starts with a dash).
      const [problem = '', ...advice] = (err instanceof Error ? err.message : String(err)).split('\n');
      throw new UsageError(problem, {
        hint: [...advice.map((l) => l.trim()).filter((l) => l !== ''), `Run audit-trail ${name} --help to see its options.`].join(' '),
      });
    }
    if (parsed.values['help'] === true) {
      io.stdout(`${command.usage}\n`);
      return 0;
    }
    refuseReplacementCharacters(parsed.values, parsed.positionals);
    return await command.run(parsed.values, parsed.positionals, io);
  } catch (err) {
    reportError(err, json, io);
    return 2;
  }
}
