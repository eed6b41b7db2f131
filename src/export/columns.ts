/**
 * The columns of an export, shared by the writers and readers of both formats
 * (docs/audit.md lists them for auditors).
 *
 *   text        UTF-8 string, null for SQL NULL
 *   jsonb       PostgreSQL's jsonb text output as a string, exactly as hashed
 *   json        the stored text as a string, exactly as hashed (db_identity)
 *   timestamp   Parquet: INT64 TIMESTAMP(MICROS, UTC); JSONL: ISO-8601 UTC with 6 fractional digits,
 *               years outside 0000-9999 as expanded years +YYYYYY / -YYYYYY (isoFromMicros())
 *   hash        64 lowercase hex characters
 */
import { BODY_FIELDS, type ChainEncoder } from '../chain/encoding.ts';
import type { ChainEvent } from '../chain/verifier.ts';

/** sequence_no, the hashed body fields in encoding order (BODY_FIELDS), then the chain fields. */
export const EXPORT_COLUMNS = [
  ['sequence_no', 'int64'],
  ...BODY_FIELDS,
  ['encoding_version', 'int32'],
  ['prev_hash', 'hash'],
  ['record_hash', 'hash'],
] as const;

export type ExportColumn = (typeof EXPORT_COLUMNS)[number][0];

/** Columns that are never NULL in audit_trail.events. */
export const REQUIRED_COLUMNS: ReadonlySet<ExportColumn> = new Set([
  'sequence_no',
  'event_id',
  'tenant_id',
  'occurred_at',
  'ingested_at',
  'actor_type',
  'action',
  'resource_type',
  'changes',
  'context',
  'db_identity',
  'encoding_version',
  'prev_hash',
  'record_hash',
]);

/** One event as the export query returns it: every value as text (timestamps as microseconds). */
export interface ExportRow {
  sequence_no: string;
  event_id: string;
  tenant_id: string;
  occurred_at_us: string;
  ingested_at_us: string;
  actor_type: string;
  actor_id: string | null;
  actor_name: string | null;
  auth_method: string | null;
  source_ip: string | null;
  user_agent_hash: string | null;
  action: string;
  resource_type: string;
  resource_id: string | null;
  parent_type: string | null;
  parent_id: string | null;
  changes: string;
  reason: string | null;
  context: string;
  db_identity: string;
  encoding_version: number;
  prev_hash: string;
  record_hash: string;
}

/** The export query's select list: jsonb as its text output, timestamps as exact microseconds. */
export const EXPORT_SELECT = `e.sequence_no::text as sequence_no, e.event_id, e.tenant_id,
  (extract(epoch from e.occurred_at) * 1000000)::bigint::text as occurred_at_us,
  (extract(epoch from e.ingested_at) * 1000000)::bigint::text as ingested_at_us,
  e.actor_type, e.actor_id, e.actor_name, e.auth_method, e.source_ip, e.user_agent_hash, e.action,
  e.resource_type, e.resource_id, e.parent_type, e.parent_id, e.changes::text as changes, e.reason,
  e.context::text as context, e.db_identity::text as db_identity, e.encoding_version::int as encoding_version,
  encode(e.prev_hash, 'hex') as prev_hash, encode(e.record_hash, 'hex') as record_hash`;

/**
 * Where the export readers deliver events, without an object per event: for
 * each event the reader writes its body into `encoder` (ChainEncoder.beginBody()
 * and the field*() methods, or writeBody()), then calls event().
 */
export interface ExportEventSink {
  readonly encoder: ChainEncoder;
  /**
   * One event, whose body is in `encoder`. `prevHash` and `recordHash` are
   * scratch buffers the reader reuses for the next event: copy what you keep.
   * `tenantText` is the tenant_id as a string when the reader decoded it as
   * one (null: read it from the body's bytes).
   */
  event(sequenceNo: bigint, encodingVersion: number, prevHash: Buffer, recordHash: Buffer, tenantText: string | null): void;
  /**
   * The sink's per-event result arrays, when it keeps them as the native
   * core writes them (decode_batch.ts's BatchCollector): then a reader may
   * hand whole runs of events to the native core (src/export/native.ts)
   * instead of calling event() for each.
   */
  readonly results?: BatchResults;
}

/** Per-event results of a batch (HASHES_PER_EVENT = 96 bytes of hashes an event: stored prev_hash, record_hash, recomputed). */
export interface BatchResults {
  /** Events stored so far (the next one goes at this index). */
  count: number;
  seq: BigInt64Array;
  version: Float64Array;
  hashes: Uint8Array;
  same: Uint8Array;
  /** The export's tenant as UTF-8 (tenantOk false: no bytes stand for it, every event goes through event()). */
  readonly tenantBytes: Uint8Array;
  readonly tenantOk: boolean;
  /** Doubles the arrays' capacity. */
  grow(): void;
}

/** Delivers a decoded event object to a sink (the slow path of the readers). */
export function deliverEvent(sink: ExportEventSink, e: ChainEvent): void {
  sink.encoder.writeBody(e);
  sink.event(e.sequence_no, e.encoding_version, e.prev_hash, e.record_hash, typeof e.tenant_id === 'string' ? e.tenant_id : null);
}
