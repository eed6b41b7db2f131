/**
 * The customer's Ed25519 key pair that signs checkpoints. The private key
 * lives in a file the customer controls; it never reaches the database.
 */
import { createHash, createPrivateKey, createPublicKey, generateKeyPairSync, type KeyObject } from 'node:crypto';
import { existsSync } from 'node:fs';
import { chmod, mkdir, readFile, rm, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { EvidenceFileError } from '../errors.ts';

export const PRIVATE_KEY_FILE = 'checkpoint-signing-key.pem';
export const PUBLIC_KEY_FILE = 'checkpoint-public-key.pem';

/** The 32 raw bytes of an Ed25519 public key. */
export function rawPublicKey(key: KeyObject): Buffer {
  const jwk = key.export({ format: 'jwk' });
  if (jwk.kty !== 'OKP' || jwk.crv !== 'Ed25519' || typeof jwk.x !== 'string') throw new Error('not an Ed25519 key');
  return Buffer.from(jwk.x, 'base64url');
}

/** Key id: hex of the first 16 bytes of SHA-256(raw public key). */
export function keyIdOf(publicKey: KeyObject): string {
  return createHash('sha256').update(rawPublicKey(publicKey)).digest().subarray(0, 16).toString('hex');
}

export interface GeneratedKeys {
  keyId: string;
  privateKeyFile: string;
  publicKeyFile: string;
}

/** Writes a new key pair into `outDir` (private key mode 0600); refuses to overwrite. */
export async function generateKeys(options: { outDir: string }): Promise<GeneratedKeys> {
  const { privateKey, publicKey } = generateKeyPairSync('ed25519');
  await mkdir(options.outDir, { recursive: true });
  const privateKeyFile = path.join(options.outDir, PRIVATE_KEY_FILE);
  const publicKeyFile = path.join(options.outDir, PUBLIC_KEY_FILE);
  const written: string[] = [];
  try {
    // Either file there already: nothing is written (a new private key beside an old public key would not match it).
    for (const file of [privateKeyFile, publicKeyFile]) {
      if (existsSync(file)) throw Object.assign(new Error(`${file} exists`), { code: 'EEXIST', path: file });
    }
    await writeFile(privateKeyFile, privateKey.export({ format: 'pem', type: 'pkcs8' }), { flag: 'wx', mode: 0o600 });
    written.push(privateKeyFile);
    await writeFile(publicKeyFile, publicKey.export({ format: 'pem', type: 'spki' }), { flag: 'wx', mode: 0o644 });
    written.push(publicKeyFile);
  } catch (err) {
    for (const file of written) await rm(file, { force: true });
    const code = (err as NodeJS.ErrnoException).code;
    const file = code === 'EEXIST' ? ((err as NodeJS.ErrnoException).path ?? privateKeyFile) : options.outDir;
    throw new EvidenceFileError(
      code === 'EEXIST' ? `${file} exists already; a key is never overwritten` : `cannot write the keys into ${options.outDir}: ${code ?? String(err)}`,
      file,
      '58030',
      { hint: 'Choose a new directory for the new key pair (and keep the old public key: it verifies the old checkpoints).', cause: err },
    );
  }
  await chmod(privateKeyFile, 0o400);
  return { keyId: keyIdOf(publicKey), privateKeyFile, publicKeyFile };
}

async function readKeyFile(file: string, what: string): Promise<string> {
  try {
    return await readFile(file, 'utf8');
  } catch (err) {
    throw new EvidenceFileError(`${what} ${file} cannot be read: ${(err as NodeJS.ErrnoException).code ?? String(err)}`, file, '58P01', {
      hint: 'audit-trail keys generate --out DIR writes a key pair; pass the file it wrote.',
      cause: err,
    });
  }
}

/** Loads an Ed25519 private key (PEM, PKCS#8). */
export async function loadPrivateKey(file: string): Promise<KeyObject> {
  const pem = await readKeyFile(file, 'private key');
  try {
    const key = createPrivateKey(pem);
    if (key.asymmetricKeyType !== 'ed25519') throw new Error(`a ${key.asymmetricKeyType ?? 'unknown'} key`);
    return key;
  } catch (err) {
    throw new EvidenceFileError(`${file} is not an Ed25519 private key (${err instanceof Error ? err.message : String(err)})`, file, '22P02', {
      hint: 'Pass the checkpoint-signing-key.pem written by audit-trail keys generate.',
      cause: err,
    });
  }
}

/** Loads an Ed25519 public key (PEM, SPKI); a private key file is accepted and its public half used. */
export async function loadPublicKey(file: string): Promise<KeyObject> {
  const pem = await readKeyFile(file, 'public key');
  try {
    const key = createPublicKey(pem);
    if (key.asymmetricKeyType !== 'ed25519') throw new Error(`a ${key.asymmetricKeyType ?? 'unknown'} key`);
    return key;
  } catch (err) {
    throw new EvidenceFileError(`${file} is not an Ed25519 public key (${err instanceof Error ? err.message : String(err)})`, file, '22P02', {
      hint: 'Pass the checkpoint-public-key.pem written by audit-trail keys generate.',
      cause: err,
    });
  }
}
