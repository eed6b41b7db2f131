/**
 * JSON Lines export files: one JSON object per event and line, keys in the
 * order of EXPORT_COLUMNS. jsonb columns are JSON strings holding
 * PostgreSQL's jsonb text, so a verifier hashes the string as it is.
 */
import { createHash, type Hash } from 'node:crypto';
import { createReadStream, createWriteStream, type WriteStream } from 'node:fs';
import { once } from 'node:events';
import { EvidenceFileError } from '../errors.ts';
import { isoFromMicros, microsFromIso, type TextValue } from '../chain/encoding.ts';
import type { ChainEvent } from '../chain/verifier.ts';
import type { ExportRow } from './columns.ts';
import type { DataFileWriter, WrittenFile } from './parquet.ts';

export class JsonlFileWriter implements DataFileWriter {
  private readonly stream: WriteStream;
  private readonly digest: Hash = createHash('sha256');
  private bytes = 0;

  constructor(readonly path: string) {
    this.stream = createWriteStream(path, { flags: 'wx' });
  }

  async writeRows(rows: ExportRow[]): Promise<void> {
    let text = '';
    for (const r of rows) {
      text += JSON.stringify({
        sequence_no: Number(r.sequence_no),
        event_id: r.event_id,
        tenant_id: r.tenant_id,
        occurred_at: isoFromMicros(BigInt(r.occurred_at_us)),
        ingested_at: isoFromMicros(BigInt(r.ingested_at_us)),
        actor_type: r.actor_type,
        actor_id: r.actor_id,
        actor_name: r.actor_name,
        auth_method: r.auth_method,
        source_ip: r.source_ip,
        user_agent_hash: r.user_agent_hash,
        action: r.action,
        resource_type: r.resource_type,
        resource_id: r.resource_id,
        parent_type: r.parent_type,
        parent_id: r.parent_id,
        changes: r.changes,
        reason: r.reason,
        context: r.context,
        db_identity: r.db_identity,
        encoding_version: r.encoding_version,
        prev_hash: r.prev_hash,
        record_hash: r.record_hash,
      });
      text += '\n';
    }
    const chunk = Buffer.from(text, 'utf8');
    this.digest.update(chunk);
    this.bytes += chunk.length;
    if (!this.stream.write(chunk)) await once(this.stream, 'drain');
  }

  async close(): Promise<WrittenFile> {
    this.stream.end();
    await once(this.stream, 'finish');
    return { sha256: this.digest.digest('hex'), bytes: this.bytes };
  }
}

const HEX64 = /^[0-9a-f]{64}$/;

function bad(file: string, line: number, what: string): EvidenceFileError {
  return new EvidenceFileError(`${file}, line ${line}: ${what}`, file, '22P02', {
    hint: 'The export file is damaged or was edited. Ask for a fresh export, or compare with the copy that was handed over.',
  });
}

function text(o: Record<string, unknown>, key: string, required: boolean, file: string, line: number): TextValue {
  const v = o[key];
  if (typeof v === 'string') return v;
  if (v === null && !required) return null;
  throw bad(file, line, `"${key}" must be ${required ? 'a string' : 'a string or null'}`);
}

function hashValue(o: Record<string, unknown>, key: string, file: string, line: number): Buffer {
  const v = o[key];
  if (typeof v !== 'string' || !HEX64.test(v)) throw bad(file, line, `"${key}" must be 64 lowercase hex characters`);
  return Buffer.from(v, 'hex');
}

function timestamp(o: Record<string, unknown>, key: string, file: string, line: number): bigint {
  const v = o[key];
  const micros = typeof v === 'string' ? microsFromIso(v) : null;
  if (micros === null) throw bad(file, line, `"${key}" must be an ISO-8601 UTC timestamp such as 2025-01-31T08:15:00.123456Z`);
  return micros;
}

/**
 * Decodes one line. Hand-written checks instead of a zod schema: this runs once
 * per event and verification must be bound by SHA-256, not by validation.
 */
export function parseJsonlEvent(lineText: string, file: string, line: number): ChainEvent {
  let parsed: unknown;
  try {
    parsed = JSON.parse(lineText);
  } catch {
    throw bad(file, line, 'not valid JSON');
  }
  if (typeof parsed !== 'object' || parsed === null || Array.isArray(parsed)) throw bad(file, line, 'not a JSON object');
  const o = parsed as Record<string, unknown>;
  const seq = o['sequence_no'];
  if (typeof seq !== 'number' || !Number.isSafeInteger(seq) || seq < 1) throw bad(file, line, '"sequence_no" must be a positive integer');
  const version = o['encoding_version'];
  if (typeof version !== 'number' || !Number.isInteger(version)) throw bad(file, line, '"encoding_version" must be an integer');
  return {
    sequence_no: BigInt(seq),
    event_id: text(o, 'event_id', true, file, line),
    tenant_id: text(o, 'tenant_id', true, file, line),
    occurred_at: timestamp(o, 'occurred_at', file, line),
    ingested_at: timestamp(o, 'ingested_at', file, line),
    actor_type: text(o, 'actor_type', true, file, line),
    actor_id: text(o, 'actor_id', false, file, line),
    actor_name: text(o, 'actor_name', false, file, line),
    auth_method: text(o, 'auth_method', false, file, line),
    source_ip: text(o, 'source_ip', false, file, line),
    user_agent_hash: text(o, 'user_agent_hash', false, file, line),
    action: text(o, 'action', true, file, line),
    resource_type: text(o, 'resource_type', true, file, line),
    resource_id: text(o, 'resource_id', false, file, line),
    parent_type: text(o, 'parent_type', false, file, line),
    parent_id: text(o, 'parent_id', false, file, line),
    changes: text(o, 'changes', true, file, line),
    reason: text(o, 'reason', false, file, line),
    context: text(o, 'context', true, file, line),
    db_identity: text(o, 'db_identity', true, file, line),
    encoding_version: version,
    prev_hash: hashValue(o, 'prev_hash', file, line),
    record_hash: hashValue(o, 'record_hash', file, line),
  };
}

/**
 * Reads a JSONL file in batches of events, computing the file's SHA-256 on the
 * same pass. `onDigest` receives the hex digest after the last batch.
 */
export async function* readJsonlEvents(path: string, label: string, onDigest: (sha256: string) => void): AsyncGenerator<ChainEvent[]> {
  const digest = createHash('sha256');
  let rest: Buffer = Buffer.alloc(0);
  let line = 0;
  const stream = createReadStream(path, { highWaterMark: 1 << 20 });
  for await (const raw of stream) {
    const chunk = raw as Buffer;
    digest.update(chunk);
    const data = rest.length === 0 ? chunk : Buffer.concat([rest, chunk]);
    const batch: ChainEvent[] = [];
    let start = 0;
    let nl = data.indexOf(10, start);
    while (nl !== -1) {
      line++;
      batch.push(parseJsonlEvent(data.toString('utf8', start, nl), label, line));
      start = nl + 1;
      nl = data.indexOf(10, start);
    }
    rest = data.subarray(start);
    if (batch.length > 0) yield batch;
  }
  if (rest.length > 0) {
    line++;
    // A last line without its newline: the file was cut short.
    throw bad(label, line, 'the last line has no end (the file was truncated)');
  }
  onDigest(digest.digest('hex'));
}
