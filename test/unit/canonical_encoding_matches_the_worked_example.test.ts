/**
 * The TypeScript encoder reproduces, byte for byte, the worked example of
 * docs/hash-chain.md (a real event: its body was produced by SQL
 * audit_trail.encode_body() and its record_hash by the database).
 */
import { createHash, generateKeyPairSync, createPublicKey } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { ChainEncoder, GENESIS_HASH, type EventBodyFields } from '../../src/chain/encoding.ts';
import { isoFromMicros, microsFromIso } from '../../src/chain/encoding.ts';
import { canonicalCheckpoint, checkCheckpoint, signCheckpoint } from '../../src/anchor/checkpoint.ts';
import { keyIdOf } from '../../src/anchor/keys.ts';

const example: EventBodyFields = {
  event_id: '01M8E7B2YD2RTDGHJWDAG6GB8D',
  tenant_id: 'plant_hd',
  occurred_at: 1741068900123456n,
  ingested_at: 1795773795277311n,
  actor_type: 'user',
  actor_id: 'operator.meier',
  actor_name: 'Anna Meier',
  auth_method: null,
  source_ip: null,
  user_agent_hash: null,
  action: 'update',
  resource_type: 'downtime',
  resource_id: 'DT-1042',
  parent_type: null,
  parent_id: null,
  changes: '[{"after": "material shortage", "field": "category", "before": "unplanned"}]',
  reason: 'Reclassified after PLC alarm log 4711 review',
  context: '{"recorded": {}, "capture_method": "api"}',
  db_identity: '{"login":"postgres","app":"mes","client":"127.0.0.1","pid":17258,"xid":2088455}',
};
const MESSAGE_HEX = '5047415400010000001a30314d384537423259443252544447484a57444147364742384400000008706c616e745f68640000000800062f7e31524340000000080006613f2b2a19ff00000004757365720000000e6f70657261746f722e6d656965720000000a416e6e61204d65696572ffffffffffffffffffffffff0000000675706461746500000008646f776e74696d650000000744542d31303432ffffffffffffffff0000004c5b7b226166746572223a20226d6174657269616c2073686f7274616765222c20226669656c64223a202263617465676f7279222c20226265666f7265223a2022756e706c616e6e6564227d5d0000002c5265636c617373696669656420616674657220504c4320616c61726d206c6f67203437313120726576696577000000297b227265636f72646564223a207b7d2c2022636170747572655f6d6574686f64223a2022617069227d0000004f7b226c6f67696e223a22706f737467726573222c22617070223a226d6573222c22636c69656e74223a223132372e302e302e31222c22706964223a31373235382c22786964223a323038383435357d000000080000000000000001000000200000000000000000000000000000000000000000000000000000000000000000';
const RECORD_HASH = '806afcde486f44f0b27d5a2eeb8bb703c3ce9c1eafa5429669233ccb1f16ef36';

describe('canonical encoding v1', () => {
  it('encodes the worked example to the documented bytes and hash', () => {
    const encoder = new ChainEncoder();
    expect(encoder.encodeMessage(example, 1n, GENESIS_HASH).toString('hex')).toBe(MESSAGE_HEX);
    expect(createHash('sha256').update(Buffer.from(MESSAGE_HEX, 'hex')).digest('hex')).toBe(RECORD_HASH);
    expect(encoder.recordHash(example, 1n, GENESIS_HASH).toString('hex')).toBe(RECORD_HASH);
  });

  it('gives the same bytes for text as strings or as UTF-8 bytes, and grows its buffer for large values', () => {
    const encoder = new ChainEncoder();
    const big = 'é𝄞'.repeat(100_000);
    const asText = encoder.encodeBody({ ...example, reason: big }).toString('hex');
    const asBytes = encoder.encodeBody({ ...example, reason: Buffer.from(big, 'utf8') }).toString('hex');
    expect(asBytes).toBe(asText);
    expect(Buffer.from(asText, 'hex').includes(Buffer.from(big, 'utf8'))).toBe(true);
  });

  it('converts timestamps to microseconds exactly, before and after 1970', () => {
    for (const iso of ['2025-03-04T06:15:00.123456Z', '1969-12-31T23:59:59.999456Z', '0001-01-01T00:00:00.000001Z', '9999-12-31T23:59:59.999999Z']) {
      const micros = microsFromIso(iso);
      expect(micros).not.toBeNull();
      expect(isoFromMicros(micros as bigint)).toBe(iso);
    }
    expect(microsFromIso('1969-12-31T23:59:59.999456Z')).toBe(-544n);
  });

  it('signs checkpoints over the documented canonical JSON', () => {
    const { privateKey } = generateKeyPairSync('ed25519');
    const publicKey = createPublicKey(privateKey);
    const keyId = keyIdOf(publicKey);
    const c = { tenant_id: 'plant_hd', sequence_no: 1, record_hash: RECORD_HASH, anchored_at: '2025-03-04T07:00:00.000Z', key_id: keyId, previous_checkpoint_digest: null };
    expect(canonicalCheckpoint(c).toString('utf8')).toBe(
      `{"type":"pg-audit-trail checkpoint","version":1,"tenant_id":"plant_hd","sequence_no":1,"record_hash":"${RECORD_HASH}","anchored_at":"2025-03-04T07:00:00.000Z","key_id":"${keyId}","previous_checkpoint_digest":null}`,
    );
    const published = signCheckpoint(c, privateKey);
    expect(checkCheckpoint(Buffer.from(JSON.stringify(published)), publicKey, keyId)).toMatchObject({ ok: true });
    const edited = { ...published, checkpoint: { ...published.checkpoint, sequence_no: 2 } };
    expect(checkCheckpoint(Buffer.from(JSON.stringify(edited)), publicKey, keyId)).toMatchObject({ ok: false, reason: 'edited' });
  });
});
