/**
 * `audit-trail demo`: a shift of MES changes is audited, anchored, verified,
 * tampered with as a superuser would, and the tampering is found -- in the
 * database and in an export checked offline against the signed checkpoint.
 *
 * runDemo() reports every step through `onStep` as it happens and returns one
 * report; `ok` is true when the demo worked as intended: the clean checks
 * passed and every tampered event was named.
 */
import { mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import pg from 'pg';
import { AuditTrailError, toAuditTrailError, type SerializedError } from '../errors.ts';
import { migrate } from '../db/migrate.ts';
import type { ChainVerification } from '../db/verify.ts';
import { generateKeys } from '../anchor/keys.ts';
import { anchorAll } from '../anchor/anchor.ts';
import { verifyWithAnchors } from '../anchor/verify_database.ts';
import { exportTenant, type ExportFormat } from '../export/export.ts';
import { verifyExport, type ExportVerification } from '../export/verify_export.ts';
import { stopManagedServer, type ManagedServer } from '../db/embedded_server.ts';
import { closeDemoDatabase, openDemoDatabase, stopCommand, type DemoDatabase } from './demo_database.ts';
import { createMesSchema, MES_TABLES } from './mes_schema.ts';
import { ACTORS, DUPLICATE_DOWNTIME_ID, MATERIAL_WAIT, TENANT, attemptRefusedChanges, registerActors, runShift, type Refusal, type ShiftChange } from './shift.ts';
import { chooseTargets, findBreaks, tamper, type Tampering } from './tamper.ts';

export interface DemoOptions {
  /** A server to create the demo's database on; default: an embedded PostgreSQL 17 in a temporary directory. */
  databaseUrl?: string | undefined;
  /** Leave the server (embedded), the database and the files in place. */
  keep?: boolean | undefined;
  /** Format of the exports; default jsonl (readable in any text editor). */
  format?: ExportFormat | undefined;
  /** Called with each step as it completes. */
  onStep?: ((step: DemoStep) => void) | undefined;
}

export interface DemoStep {
  n: number;
  /** One line for people. */
  text: string;
  /** False when the step's outcome was not the expected one. */
  ok: boolean;
  /** Indented lines under the step (the shift's events). */
  lines?: string[] | undefined;
}

export interface ShiftEvent extends ShiftChange {
  sequence_no: number;
}

export interface Finding {
  sequence_no: number;
  problem: string;
  /** What the demo did to that event. */
  tampering: string;
}

export interface ExportCheck {
  dir: string;
  format: ExportFormat;
  ok: boolean;
  events_checked: number;
  checkpoints_checked: number;
  first_bad_sequence_no: number | null;
  problem: string | null;
  detail: string | null;
}

export interface DemoReport {
  /** The demo worked as intended: the clean trail verified, and the tampering was found and named. */
  ok: boolean;
  tenant: string;
  database: { source: DemoDatabase['source']; name: string; server_version: string; url: string | null; kept: boolean };
  /** The embedded server, when --keep left it running. */
  server: { data_dir: string; log_file: string; port: number; stop_command: string } | null;
  /** Keys, anchor store and exports (kept with --keep, else removed). */
  work_dir: string | null;
  steps: DemoStep[];
  actors: Array<{ actor_id: string; display_name: string; role: string; status: string; is_shared_account: boolean }>;
  shift: ShiftEvent[];
  refusals: Refusal[];
  anchor: { key_id: string; public_key: string; store: string; sequence_no: number; record_hash: string; checkpoint_digest: string } | null;
  clean: {
    database: { ok: boolean; events_checked: number; checkpoints_checked: number; problem: string | null; detail: string | null } | null;
    export: ExportCheck | null;
  };
  tampering: Tampering | null;
  detected: {
    /** Every break audit_trail.verify() named, in order. */
    database: Array<{ first_bad_sequence_no: number | null; problem: string | null; detail: string | null }>;
    export: ExportCheck | null;
  };
  /** The summary: each tampered event as verification named it. */
  findings: Finding[];
  /** Why the demo did not work as intended; null when it did. */
  error: SerializedError | null;
}

async function chainHead(client: pg.ClientBase): Promise<number> {
  const { rows } = await client.query<{ n: string | null }>('select max(sequence_no)::text as n from audit_trail.events where tenant_id = $1', [TENANT]);
  return Number(rows[0]?.n ?? 0);
}

const FORGED_REASON = 'Servo fault E-217 confirmed by maintenance report MR-5512';

function exportCheck(r: ExportVerification, format: ExportFormat): ExportCheck {
  return {
    dir: r.dir,
    format,
    ok: r.ok,
    events_checked: r.eventsChecked,
    checkpoints_checked: r.checkpointsChecked,
    first_bad_sequence_no: r.firstBadSequenceNo,
    problem: r.problem,
    detail: r.detail,
  };
}

function breakJson(r: ChainVerification): DemoReport['detected']['database'][number] {
  return { first_bad_sequence_no: r.firstBadSequenceNo, problem: r.problem, detail: r.detail };
}

function plural(n: number, one: string, many = `${one}s`): string {
  return `${n} ${n === 1 ? one : many}`;
}

/** Thrown when a step's outcome is not what the demo expects; ends the demo with ok false. */
class UnexpectedOutcome extends AuditTrailError {
  constructor(message: string) {
    super(message, 'XX000', { hint: 'This is a bug in pg-audit-trail or its installation: please report it with the output of audit-trail demo --json.' });
  }
}

export async function runDemo(options: DemoOptions = {}): Promise<DemoReport> {
  const format = options.format ?? 'jsonl';
  const keep = options.keep === true;
  const report: DemoReport = {
    ok: false,
    tenant: TENANT,
    database: { source: options.databaseUrl === undefined ? 'embedded' : 'database-url', name: '', server_version: '', url: null, kept: false },
    server: null,
    work_dir: null,
    steps: [],
    actors: ACTORS.map((a) => ({ actor_id: a.actor_id, display_name: a.display_name, role: a.role, status: a.status, is_shared_account: a.is_shared_account })),
    shift: [],
    refusals: [],
    anchor: null,
    clean: { database: null, export: null },
    tampering: null,
    detected: { database: [], export: null },
    findings: [],
    error: null,
  };
  const step = (text: string, ok = true, lines?: string[]): void => {
    const s: DemoStep = { n: report.steps.length + 1, text, ok, ...(lines === undefined ? {} : { lines }) };
    report.steps.push(s);
    options.onStep?.(s);
  };

  let db: DemoDatabase | null = null;
  let server: ManagedServer | null = null;
  let workDir: string | null = null;
  let client: pg.Client | null = null;
  // Ctrl-C: never leave a temporary server or database behind (unless --keep).
  // While the server starts, the signal is held until it has started (or failed
  // and removed itself), so that there is always something definite to clean.
  let starting = true;
  let interrupted: NodeJS.Signals | null = null;
  const cleanUpAndExit = async (signal: NodeJS.Signals): Promise<never> => {
    await client?.end().catch(() => undefined);
    if (!keep && db !== null) await closeDemoDatabase(db, false).catch(() => undefined);
    else if (!keep && server !== null) await stopManagedServer(server, false).catch(() => undefined);
    if (!keep && workDir !== null) await rm(workDir, { recursive: true, force: true }).catch(() => undefined);
    process.exit(signal === 'SIGINT' ? 130 : 143);
  };
  const onSignal = (signal: NodeJS.Signals): void => {
    if (starting) interrupted = signal;
    else void cleanUpAndExit(signal);
  };
  process.once('SIGINT', onSignal);
  process.once('SIGTERM', onSignal);
  try {
    // 1. A database of our own.
    try {
      db = await openDemoDatabase(options.databaseUrl, (s) => {
        server = s;
      });
    } finally {
      starting = false;
    }
    if (interrupted !== null) await cleanUpAndExit(interrupted);
    report.database = { source: db.source, name: db.name, server_version: db.serverVersion, url: db.displayUrl, kept: false };
    step(
      db.source === 'embedded'
        ? `Started ${db.serverVersion} (embedded, in a temporary directory) and created database ${db.name}`
        : `Connected to ${db.serverVersion} and created database ${db.name} (no other database is touched)`,
    );
    workDir = await mkdtemp(path.join(os.tmpdir(), 'audit-trail-demo-'));
    report.work_dir = workDir;

    // 2. Install.
    const applied = await migrate({ databaseUrl: db.url });
    step(`Installed the audit trail (schema audit_trail, ${plural(applied.length, 'migration')} applied)`);

    // The MES application's connection: one login, who and why per transaction.
    client = new pg.Client({ connectionString: db.url, application_name: 'mes-app (audit-trail demo)' });
    await client.connect();

    // 3. Domain schema and capture.
    await createMesSchema(client);
    step(`Created the MES tables ${MES_TABLES.join(' and ')} and turned auditing on (tenant from plant_id; reclassifying downtime needs a reason; deletes become soft deletes)`);

    // 4. Actors and policy.
    const operatorLogin = await registerActors(client);
    const named = ACTORS.filter((a) => a.status === 'active' && !a.is_shared_account);
    const suspended = ACTORS.filter((a) => a.status === 'suspended');
    const shared = ACTORS.filter((a) => a.is_shared_account);
    step(
      `Registered ${plural(ACTORS.length, 'actor')} for ${TENANT}: ${named.map((a) => `${a.display_name} (${a.role})`).join(', ')}; ` +
        `${suspended.map((a) => a.actor_id).join(', ')} is suspended, ${shared.map((a) => a.actor_id).join(', ')} is a shared login (the plant refuses both); ` +
        `the database login ${operatorLogin} registered them and anchors`,
    );

    // 5. The shift.
    const headBefore = await chainHead(client);
    const changes = await runShift(client);
    const { rows: seqRows } = await client.query<{ sequence_no: string }>(
      'select e.sequence_no::text as sequence_no from audit_trail.events e where e.tenant_id = $1 and e.sequence_no > $2 order by e.sequence_no',
      [TENANT, headBefore],
    );
    if (seqRows.length !== changes.length) throw new UnexpectedOutcome(`the shift made ${changes.length} changes but ${TENANT}'s chain grew by ${seqRows.length} events`);
    report.shift = changes.map((c, i) => ({ ...c, sequence_no: Number(seqRows[i]?.sequence_no) }));
    const firstShiftSeq = report.shift[0]?.sequence_no ?? 0;
    const lastShiftSeq = report.shift.at(-1)?.sequence_no ?? 0;
    const width = Math.max(...report.shift.map((e) => e.actor_name.length));
    step(
      `Simulated the early shift: ${plural(changes.length, 'change')} by ${named.map((a) => a.display_name).join(', ')}, each with its reason -> events ${firstShiftSeq} to ${lastShiftSeq} of ${TENANT}${
        firstShiftSeq > 1 ? ` (1 to ${firstShiftSeq - 1}: the registration of actors and policy)` : ''
      }`,
      true,
      report.shift.map((e) => `#${String(e.sequence_no).padEnd(3)} ${e.actor_name.padEnd(width)}  ${e.summary}`),
    );

    // 6. Refusals.
    report.refusals = await attemptRefusedChanges(client);
    const refusedOk = report.refusals.every((r) => r.sqlstate === 'AT002' && r.events_after === r.events_before);
    const sharedRefusal = report.refusals[0];
    step(
      `Refused: the shared login ${sharedRefusal?.actor_id ?? '?'} tried to ${sharedRefusal?.attempted ?? '?'} -> ${sharedRefusal?.sqlstate ?? '?'} "${sharedRefusal?.message ?? '?'}"` +
        `; the suspended ${report.refusals[1]?.actor_id ?? '?'} likewise; nothing written`,
      refusedOk,
    );
    if (!refusedOk) throw new UnexpectedOutcome('a refused change wrote an event or failed for another reason than the actor policy');

    // 7. Keys and a signed checkpoint.
    const keys = await generateKeys({ outDir: path.join(workDir, 'keys') });
    const store = `file:${path.join(workDir, 'anchors')}`;
    const run = await anchorAll({ databaseUrl: db.url, stores: [store], keyFile: keys.privateKeyFile, tenant: TENANT });
    const anchored = run.tenants.find((t) => t.tenantId === TENANT);
    if (anchored?.status !== 'anchored' || anchored.checkpointDigest === null) {
      throw new UnexpectedOutcome(`anchoring ${TENANT} gave ${anchored?.status ?? 'nothing'}: ${anchored?.detail ?? ''}`);
    }
    report.anchor = {
      key_id: keys.keyId,
      public_key: keys.publicKeyFile,
      store,
      sequence_no: anchored.sequenceNo,
      record_hash: anchored.recordHash,
      checkpoint_digest: anchored.checkpointDigest,
    };
    step(
      `Signed a checkpoint of ${TENANT} at sequence_no ${anchored.sequenceNo} with a new Ed25519 key (key id ${keys.keyId}) and wrote it to ${store}` +
        ` (the anchoring itself is event ${anchored.sequenceNo + 1})`,
    );

    // 8. Clean verification, in the database and against the checkpoint.
    const clean = (await verifyWithAnchors({ databaseUrl: db.url, tenant: TENANT, anchors: [store], publicKeyFile: keys.publicKeyFile })).tenants[0];
    report.clean.database = clean === undefined ? null : {
      ok: clean.ok, events_checked: clean.eventsChecked, checkpoints_checked: clean.checkpointsChecked, problem: clean.problem, detail: clean.detail,
    };
    step(
      clean?.ok === true
        ? `Verified in the database: chain OK (${plural(clean.eventsChecked, 'event')}), the signed checkpoint matches`
        : `Verified in the database: BROKEN at sequence_no ${clean?.firstBadSequenceNo ?? '?'} (${clean?.problem ?? '?'}), expected OK`,
      clean?.ok === true,
    );
    if (clean?.ok !== true) throw new UnexpectedOutcome('the untouched chain did not verify');

    // 9. Export before tampering.
    const beforeDir = path.join(workDir, 'export-before-tampering');
    const before = await exportTenant({ databaseUrl: db.url, tenant: TENANT, outDir: beforeDir, format });
    step(`Exported ${TENANT} (${plural(before.event_count, 'event')}, ${format}) to ${beforeDir}, for the auditor`);

    // 10. Tampering.
    const targets = await chooseTargets(client, TENANT, MATERIAL_WAIT, `%${DUPLICATE_DOWNTIME_ID}%`);
    report.tampering = await tamper(client, TENANT, targets.edit, targets.remove, FORGED_REASON);
    const { edited, deleted } = report.tampering;
    step(
      `Tampered as a superuser: triggers off, the reason of event ${edited.sequence_no} (the reclassification) rewritten to "${FORGED_REASON}", ` +
        `event ${deleted.sequence_no} (the deletion of ${DUPLICATE_DOWNTIME_ID}) deleted, triggers on`,
    );

    // 11. audit_trail.verify names the broken events.
    const breaks = await findBreaks(client, TENANT);
    report.detected.database = breaks.map(breakJson);
    const expected = new Map<number, string>([
      [edited.sequence_no, 'reason rewritten'],
      [deleted.sequence_no, 'event deleted'],
    ]);
    const named_ = breaks.map((b) => b.firstBadSequenceNo);
    const allNamed = [...expected.keys()].every((s) => named_.includes(s)) && breaks.length === expected.size;
    step(
      `audit_trail.verify('${TENANT}'), run again after each break: ${breaks.map((b) => `BROKEN at sequence_no ${b.firstBadSequenceNo ?? '?'} (${b.problem ?? '?'})`).join('; ') || 'OK'}`,
      allNamed,
    );
    report.findings = breaks.map((b) => ({
      sequence_no: b.firstBadSequenceNo ?? 0,
      problem: b.problem ?? 'unknown',
      tampering: expected.get(b.firstBadSequenceNo ?? -1) ?? 'not tampered by the demo',
    }));
    if (!allNamed) throw new UnexpectedOutcome(`verification named ${named_.join(', ') || 'nothing'}; the demo tampered with ${[...expected.keys()].join(' and ')}`);

    // 12. The export made before tampering, checked offline against the checkpoint.
    const beforeCheck = exportCheck(await verifyExport({ dir: beforeDir, anchors: [store], publicKeyFile: keys.publicKeyFile }), format);
    report.clean.export = beforeCheck;
    step(
      beforeCheck.ok
        ? `Checked the export made before tampering offline (no database) against the signed checkpoint: OK (${plural(beforeCheck.events_checked, 'event')}, ${beforeCheck.checkpoints_checked === 1 ? '1 checkpoint matches' : `${beforeCheck.checkpoints_checked} checkpoints match`})`
        : `Checked the export made before tampering offline: BROKEN at sequence_no ${beforeCheck.first_bad_sequence_no ?? '?'} (${beforeCheck.problem ?? '?'}), expected OK`,
      beforeCheck.ok,
    );
    if (!beforeCheck.ok) throw new UnexpectedOutcome('the export made before tampering did not verify');

    // 13. An export made after tampering, checked offline.
    const afterDir = path.join(workDir, 'export-after-tampering');
    await exportTenant({ databaseUrl: db.url, tenant: TENANT, outDir: afterDir, format });
    const afterCheck = exportCheck(await verifyExport({ dir: afterDir, anchors: [store], publicKeyFile: keys.publicKeyFile }), format);
    report.detected.export = afterCheck;
    const firstTampered = Math.min(edited.sequence_no, deleted.sequence_no);
    const afterOk = !afterCheck.ok && afterCheck.first_bad_sequence_no === firstTampered;
    step(
      afterCheck.ok
        ? 'Exported again after tampering and checked it offline: OK, expected BROKEN'
        : `Exported again after tampering and checked it offline: BROKEN at sequence_no ${afterCheck.first_bad_sequence_no ?? '?'} (${afterCheck.problem ?? '?'})`,
      afterOk,
    );
    if (!afterOk) throw new UnexpectedOutcome(`the export made after tampering should be broken at sequence_no ${firstTampered}`);

    report.ok = true;
  } catch (err) {
    report.error = toAuditTrailError(err).toJSON();
  } finally {
    process.removeListener('SIGINT', onSignal);
    process.removeListener('SIGTERM', onSignal);
    await client?.end().catch(() => undefined);
    if (db !== null) {
      report.database.kept = keep;
      if (keep && db.server !== null) {
        report.server = { data_dir: db.server.dataDir, log_file: db.server.logFile, port: db.server.port, stop_command: stopCommand(db.server) };
      }
      try {
        await closeDemoDatabase(db, keep);
      } catch (err) {
        report.ok = false;
        report.error ??= toAuditTrailError(err).toJSON();
      }
    }
    if (!keep && workDir !== null) {
      await rm(workDir, { recursive: true, force: true });
      report.work_dir = null;
    }
    if (!keep) report.database.url = null;
  }
  return report;
}
