// Where uploaded bytes live: content-addressed blobs, named by their SHA-256, so that the same
// bytes uploaded twice (a picture forwarded to fifty chats) are one blob. The store knows nothing
// of slots, owners or reference counts (store.ts keeps those); it stages an incoming stream while
// hashing it, then keeps or discards it once the caller knows whether the blob already exists.
// Local disk is the implementation here; an S3-compatible store fits the same interface.
import { createHash, randomBytes } from 'node:crypto';
import fs from 'node:fs';
import fsp from 'node:fs/promises';
import path from 'node:path';
import type { Readable } from 'node:stream';
import { Transform } from 'node:stream';
import { pipeline } from 'node:stream/promises';

/** An upload received in full and hashed, not yet part of the store. */
export interface StagedBlob {
  readonly sha256: string;
  readonly size: number;
  /** Makes it the stored blob `sha256` (when no such blob exists yet). */
  keep(): Promise<void>;
  /** Throws it away (the blob already exists, or the upload is refused). */
  discard(): Promise<void>;
}

/** Inclusive byte range, as in an HTTP Range header (RFC 9110 §14.1.2). */
export interface ByteRange {
  start: number;
  end: number;
}

export interface BlobStore {
  /**
   * Reads `source` to its end into a staging area, hashing it on the way. Rejects with
   * BlobTooLarge as soon as more than `maxBytes` arrive (the partial copy is removed).
   */
  stage(source: Readable, maxBytes: number): Promise<StagedBlob>;
  /** The blob's bytes, or a range of them. */
  open(sha256: string, range?: ByteRange): Readable;
  has(sha256: string): Promise<boolean>;
  delete(sha256: string): Promise<void>;
  /** Every stored digest (for finding blobs a crash left without a database row). */
  list(): AsyncIterable<string>;
}

export class BlobTooLarge extends Error {
  constructor(readonly maxBytes: number) {
    super(`more than the announced ${maxBytes} bytes`);
  }
}

const SHA256_HEX = /^[0-9a-f]{64}$/;

/**
 * Blobs as files under `<root>/<first two hex digits>/<sha256>` (at most 256 entries per level
 * for the first level, so no directory grows unmanageably), staged under `<root>/tmp` on the
 * same file system so that keeping one is a rename.
 */
export class LocalDiskBlobStore implements BlobStore {
  private readonly staging: string;

  constructor(readonly root: string) {
    this.staging = path.join(root, 'tmp');
  }

  /** Creates the directories and removes what an interrupted upload left in staging. */
  async init(): Promise<void> {
    await fsp.rm(this.staging, { recursive: true, force: true });
    await fsp.mkdir(this.staging, { recursive: true });
  }

  pathOf(sha256: string): string {
    // the name is always our own hex digest, never user input (DESIGN.md: paths never from users)
    if (!SHA256_HEX.test(sha256)) throw new Error(`not a SHA-256 digest: ${sha256}`);
    return path.join(this.root, sha256.slice(0, 2), sha256);
  }

  async stage(source: Readable, maxBytes: number): Promise<StagedBlob> {
    const temp = path.join(this.staging, randomBytes(12).toString('hex'));
    const hash = createHash('sha256');
    let size = 0;
    const meter = new Transform({
      transform(chunk: Buffer, _encoding, callback) {
        size += chunk.length;
        if (size > maxBytes) return callback(new BlobTooLarge(maxBytes));
        hash.update(chunk);
        callback(null, chunk);
      },
    });
    try {
      await pipeline(source, meter, fs.createWriteStream(temp, { flags: 'wx' }));
    } catch (err) {
      await fsp.rm(temp, { force: true });
      // a failed write (ENOSPC...) names no file: name the one it was for, for the log
      const errno = err as NodeJS.ErrnoException;
      if (typeof errno?.code === 'string' && errno.path === undefined) errno.path = temp;
      throw err;
    }
    const sha256 = hash.digest('hex');
    const finalPath = this.pathOf(sha256);
    return {
      sha256,
      size,
      keep: async () => {
        await fsp.mkdir(path.dirname(finalPath), { recursive: true });
        await fsp.rename(temp, finalPath);
      },
      discard: () => fsp.rm(temp, { force: true }),
    };
  }

  open(sha256: string, range?: ByteRange): Readable {
    return fs.createReadStream(this.pathOf(sha256), range ? { start: range.start, end: range.end } : {});
  }

  async has(sha256: string): Promise<boolean> {
    return fsp.access(this.pathOf(sha256)).then(
      () => true,
      () => false,
    );
  }

  async delete(sha256: string): Promise<void> {
    await fsp.rm(this.pathOf(sha256), { force: true });
  }

  async *list(): AsyncIterable<string> {
    for (const prefix of await fsp.readdir(this.root)) {
      if (!/^[0-9a-f]{2}$/.test(prefix)) continue;
      for (const name of await fsp.readdir(path.join(this.root, prefix))) {
        if (SHA256_HEX.test(name) && name.startsWith(prefix)) yield name;
      }
    }
  }
}
