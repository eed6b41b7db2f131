/**
 * StreamingChainVerifier.pushBatch() (the main thread's check of the batches
 * the worker threads decoded and hashed) counts the events that pass every
 * check without looking at them one by one: it must end in exactly the state
 * pushComputed() event by event reaches (problem, sequence_no, detail, counts,
 * first and last hashes), whatever the faults and wherever the batches are cut.
 */
import { createHash } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { GENESIS_HASH } from '../../src/chain/encoding.ts';
import { StreamingChainVerifier, type ChainProblem } from '../../src/chain/verifier.ts';
import { seededRandom as random } from '../helpers/random.ts';

const TENANT = 'plant_batches';

interface Event {
  seq: bigint;
  version: number;
  prev: Buffer;
  stored: Buffer;
  computed: Buffer;
  tenant: string;
}

/** A valid chain from `from` on (the hashes stand for recomputed ones: any 32 bytes do). */
function chain(n: number, from: bigint): Event[] {
  const events: Event[] = [];
  let prev = from === 1n ? GENESIS_HASH : createHash('sha256').update('before').digest();
  for (let i = 0; i < n; i++) {
    const seq = from + BigInt(i);
    const computed = createHash('sha256').update(`event ${seq}`).digest();
    events.push({ seq, version: 1, prev, stored: computed, computed, tenant: TENANT });
    prev = computed;
  }
  return events;
}

type Fault = (events: Event[], at: number) => void;
const other = (b: Buffer): Buffer => Buffer.from(b.map((x, i) => (i === 0 ? x ^ 1 : x)));
const FAULTS: Array<[string, Fault]> = [
  ['an edited event', (e, at) => ((e[at] as Event).computed = other((e[at] as Event).computed))],
  ['a stored hash changed', (e, at) => ((e[at] as Event).stored = other((e[at] as Event).stored))],
  ['a broken link', (e, at) => ((e[at] as Event).prev = other((e[at] as Event).prev))],
  ['a deleted event', (e, at) => void e.splice(at, 1)],
  ['a duplicate', (e, at) => void e.splice(at, 0, { ...(e[at] as Event) })],
  ['two events swapped', (e, at) => void e.splice(at, 2, e[at + 1] as Event, e[at] as Event)],
  ['another tenant', (e, at) => ((e[at] as Event).tenant = 'plant_other')],
  ['another encoding_version', (e, at) => ((e[at] as Event).version = 2)],
  ['NaN as encoding_version', (e, at) => ((e[at] as Event).version = Number.NaN)],
  ['a sequence number that jumps back', (e, at) => ((e[at] as Event).seq = 1n)],
];

interface Outcome {
  problem: ChainProblem | null;
  eventsChecked: number;
  last: string | null;
  lastHash: string | null;
  firstHash: string | null;
  firstPrev: string | null;
  anchored: string[];
}

function outcome(v: StreamingChainVerifier, seen: string[]): Outcome {
  const hex = (b: Buffer | null): string | null => (b === null ? null : b.toString('hex'));
  return {
    problem: v.finish(),
    eventsChecked: v.eventsChecked,
    last: v.lastSequenceNo === null ? null : String(v.lastSequenceNo),
    lastHash: hex(v.lastRecordHash),
    firstHash: hex(v.firstRecordHash),
    firstPrev: hex(v.firstPrevHash),
    anchored: seen,
  };
}

/** Event by event, as pushComputed() is called for each. */
function oneByOne(events: Event[], from: bigint, withCallback: boolean): Outcome {
  const seen: string[] = [];
  const v = new StreamingChainVerifier(TENANT, from, withCallback ? (seq) => (seen.push(String(seq)), null) : undefined);
  for (const e of events) v.pushComputed(e.seq, e.version, e.prev, e.stored, e.computed, 'f', e.tenant);
  return outcome(v, seen);
}

/** In batches cut at random, as the main thread receives them from the workers. */
function inBatches(events: Event[], from: bigint, withCallback: boolean, rnd: () => number): Outcome {
  const seen: string[] = [];
  const v = new StreamingChainVerifier(TENANT, from, withCallback ? (seq) => (seen.push(String(seq)), null) : undefined);
  for (let start = 0; start < events.length; ) {
    const count = Math.min(events.length - start, 1 + Math.floor(rnd() * 9));
    const seq = new BigInt64Array(count);
    const version = new Float64Array(count);
    const hashes = Buffer.alloc(count * 96);
    const same = new Uint8Array(count);
    const others: Array<[number, string]> = [];
    for (let k = 0; k < count; k++) {
      const e = events[start + k] as Event;
      seq[k] = e.seq;
      version[k] = e.version;
      e.prev.copy(hashes, k * 96);
      e.stored.copy(hashes, k * 96 + 32);
      e.computed.copy(hashes, k * 96 + 64);
      same[k] = e.stored.equals(e.computed) ? 1 : 0;
      if (e.tenant !== TENANT) others.push([k, e.tenant]);
    }
    v.pushBatch(count, seq, version, hashes, same, others, 'f');
    start += count;
  }
  return outcome(v, seen);
}

describe('pushBatch() and pushComputed() event by event', () => {
  it('agree on valid chains, from sequence_no 1 and from later on', () => {
    const rnd = random(11);
    for (const from of [1n, 40n]) {
      const events = chain(60, from);
      for (const callback of [false, true]) expect(inBatches(events, from, callback, rnd)).toEqual(oneByOne(events, from, callback));
      expect(oneByOne(events, from, false).problem).toBeNull();
    }
  });

  it('agree on every fault at every place, one or two faults, batches cut anywhere', () => {
    const rnd = random(12);
    for (const [name, fault] of FAULTS) {
      for (let at = 0; at < 24; at++) {
        for (const from of [1n, 7n]) {
          const events = chain(26, from);
          fault(events, at);
          if (rnd() < 0.3) (FAULTS[Math.floor(rnd() * FAULTS.length)] as [string, Fault])[1](events, Math.min(events.length - 2, at + 1 + Math.floor(rnd() * 5)));
          const callback = rnd() < 0.2;
          const expected = oneByOne(events, from, callback);
          expect(inBatches(events, from, callback, rnd), `${name} at ${at} from ${from}`).toEqual(expected);
        }
      }
    }
  });
});
