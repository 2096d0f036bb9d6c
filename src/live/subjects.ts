/**
 * Live-steering subjects, the same as upstream Awaken's:
 *
 *   thread level:  <P>.thread.<hex t>
 *   exact target:  <P>.thread.<hex t>.run.<hex r>[.dispatch.<hex d>]
 *
 * `<hex x>` is `h` + the lowercase hex of the id's UTF-8 bytes, so ids containing `.`, `*`, `>`, spaces or any
 * Unicode can never add subject tokens or inject wildcards. Without a namespace `<P>` is `live`, which makes
 * the subjects byte-identical to a Rust Awaken node's.
 *
 * Two additions upstream does not need to spell out:
 * - JS strings may hold lone surrogates, which plain UTF-8 would collapse into U+FFFD (two distinct ids, one
 *   subject). We encode them as WTF-8 (the generalized UTF-8 of the surrogate code point), which equals UTF-8
 *   for every well-formed string, so routing stays exact and upstream compatibility is untouched.
 * - nats-server rejects protocol lines longer than its max_control_line (4096 bytes by default) and drops the
 *   connection. When a full-hex subject would not fit, every long segment is replaced by `s` + the SHA-256 hex
 *   of its bytes. The choice depends only on (prefix, ids), so producer and consumer always agree; an `s`
 *   segment can never equal an `h` segment, so long-id subjects cannot collide with short-id ones.
 */
import { createHash } from 'node:crypto';
import { StorageError } from '../contract/errors.js';
import type { LiveRunTarget } from '../contract/types.js';

/** Longest subject we build. Leaves room for `HPUB <subject> <reply inbox> <hdr len> <total len>\r\n`. */
export const MAX_LIVE_SUBJECT_BYTES = 3840;
/** Longest subject prefix accepted (namespace or override). */
export const MAX_PREFIX_BYTES = 256;
/** Segments longer than this (in characters) are the ones digested when a subject does not fit. */
const DIGEST_THRESHOLD = 65;

const NAMESPACE_RE = /^[A-Za-z0-9_-]+$/;
/** One subject token of a prefix: printable ASCII without whitespace, `.`, `*` or `>`. */
const PREFIX_TOKEN_RE = /^[!-~]+$/;

/**
 * The subject prefix of a store: `live` without a namespace, `<namespace>.live` with one; an explicit
 * `override` wins over both.
 */
export function liveSubjectPrefix(namespace: string | null | undefined, override?: string): string {
  if (override !== undefined) return validateLivePrefix(override, 'liveSubjectPrefix');
  if (namespace == null) return 'live';
  if (typeof namespace !== 'string' || !NAMESPACE_RE.test(namespace)) {
    throw StorageError.validation('namespace must be letters, digits, `_` or `-`');
  }
  return validateLivePrefix(`${namespace}.live`, 'namespace');
}

/** Check a prefix is one or more literal subject tokens; returns it unchanged. */
export function validateLivePrefix(prefix: unknown, name = 'subjectPrefix'): string {
  if (typeof prefix !== 'string' || prefix.length === 0)
    throw StorageError.validation(`${name} must be a non-empty string`);
  if (Buffer.byteLength(prefix, 'utf8') > MAX_PREFIX_BYTES) {
    throw StorageError.validation(`${name} must be at most ${MAX_PREFIX_BYTES} bytes`);
  }
  for (const token of prefix.split('.')) {
    if (!PREFIX_TOKEN_RE.test(token) || token.includes('*') || token.includes('>')) {
      throw StorageError.validation(
        `${name} must be dot-separated subject tokens of printable ASCII without \`*\`, \`>\` or spaces`,
      );
    }
  }
  return prefix;
}

/** The bytes of `id`: UTF-8, with lone surrogates written as their 3-byte WTF-8 form. */
export function idBytes(id: string): Buffer {
  if (!/\p{Cs}/u.test(id)) return Buffer.from(id, 'utf8');
  const out: number[] = [];
  for (let i = 0; i < id.length; i++) {
    let cp = id.charCodeAt(i);
    if (cp >= 0xd800 && cp <= 0xdbff && i + 1 < id.length) {
      const lo = id.charCodeAt(i + 1);
      if (lo >= 0xdc00 && lo <= 0xdfff) {
        cp = 0x10000 + ((cp - 0xd800) << 10) + (lo - 0xdc00);
        i++;
      }
    }
    pushCodePoint(out, cp);
  }
  return Buffer.from(out);
}

function pushCodePoint(out: number[], cp: number): void {
  if (cp < 0x80) out.push(cp);
  else if (cp < 0x800) out.push(0xc0 | (cp >> 6), 0x80 | (cp & 0x3f));
  else if (cp < 0x10000) out.push(0xe0 | (cp >> 12), 0x80 | ((cp >> 6) & 0x3f), 0x80 | (cp & 0x3f));
  else out.push(0xf0 | (cp >> 18), 0x80 | ((cp >> 12) & 0x3f), 0x80 | ((cp >> 6) & 0x3f), 0x80 | (cp & 0x3f));
}

/** `h` + lowercase hex of the id's bytes (`t1` → `h7431`, `''` → `h`). */
export function encodeSegment(id: string): string {
  return `h${idBytes(id).toString('hex')}`;
}

/**
 * Inverse of `encodeSegment`. Accepts upper- or lowercase hex; rejects a missing `h`, an odd length, a
 * non-hex character or bytes that are not (WTF-8 generalized) UTF-8. Throws `Serialization`.
 */
export function decodeSegment(segment: string): string {
  if (!segment.startsWith('h')) throw StorageError.serialization(`subject segment must start with 'h'`);
  const hex = segment.slice(1);
  if (hex.length % 2 !== 0)
    throw StorageError.serialization('subject segment has an odd number of hex digits');
  if (!/^[0-9a-fA-F]*$/.test(hex))
    throw StorageError.serialization('subject segment has a non-hex character');
  return decodeWtf8(Buffer.from(hex, 'hex'));
}

/** Strict (generalized) UTF-8 decoding: shortest forms only, no encoded surrogate pairs, max U+10FFFF. */
function decodeWtf8(bytes: Buffer): string {
  let out = '';
  let i = 0;
  const fail = (): never => {
    throw StorageError.serialization('subject segment is not valid UTF-8');
  };
  const cont = (k: number): number => {
    const b = bytes[k];
    if (b === undefined || (b & 0xc0) !== 0x80) fail();
    return (b as number) & 0x3f;
  };
  let prevHighSurrogate = false;
  while (i < bytes.length) {
    const b0 = bytes[i] as number;
    let cp: number;
    if (b0 < 0x80) {
      cp = b0;
      i += 1;
    } else if (b0 >= 0xc2 && b0 < 0xe0) {
      cp = ((b0 & 0x1f) << 6) | cont(i + 1);
      i += 2;
    } else if (b0 >= 0xe0 && b0 < 0xf0) {
      cp = ((b0 & 0x0f) << 12) | (cont(i + 1) << 6) | cont(i + 2);
      if (cp < 0x800) fail();
      i += 3;
    } else if (b0 >= 0xf0 && b0 < 0xf5) {
      cp = ((b0 & 0x07) << 18) | (cont(i + 1) << 12) | (cont(i + 2) << 6) | cont(i + 3);
      if (cp < 0x10000 || cp > 0x10ffff) fail();
      i += 4;
    } else {
      return fail();
    }
    const isLow = cp >= 0xdc00 && cp <= 0xdfff;
    // A high surrogate followed by a low one must have been written as one 4-byte sequence.
    if (isLow && prevHighSurrogate) fail();
    prevHighSurrogate = cp >= 0xd800 && cp <= 0xdbff;
    out += String.fromCodePoint(cp);
  }
  return out;
}

function digestSegment(segment: string): string {
  return `s${createHash('sha256').update(segment).digest('hex')}`;
}

/** Join `prefix` and (literal, encoded id) pairs; digest long segments only when the subject would not fit. */
function buildSubject(prefix: string, parts: readonly (readonly [string, string])[]): string {
  // Concatenated, not joined from arrays: a run's subject is built once per run on the hot path.
  const encoded = parts.map(([, id]) => encodeSegment(id));
  let full = prefix;
  for (let i = 0; i < parts.length; i++) full += `.${parts[i]![0]}.${encoded[i]!}`;
  if (full.length <= MAX_LIVE_SUBJECT_BYTES) return full;
  let short = prefix;
  for (let i = 0; i < parts.length; i++) {
    const seg = encoded[i]!;
    short += `.${parts[i]![0]}.${seg.length > DIGEST_THRESHOLD ? digestSegment(seg) : seg}`;
  }
  return short;
}

/** `<P>.thread.<hex t>`: the subject of `deliverLive` / `openLiveChannel`. */
export function threadLiveSubject(prefix: string, threadId: string): string {
  return buildSubject(prefix, [['thread', threadId]]);
}

/** `<P>.thread.<hex t>.run.<hex r>[.dispatch.<hex d>]`: the subject of `deliverLiveTo` / `openLiveChannelFor`. */
export function targetLiveSubject(prefix: string, target: LiveRunTarget): string {
  const parts: [string, string][] = [
    ['thread', target.thread_id],
    ['run', target.run_id],
  ];
  if (target.dispatch_id != null) parts.push(['dispatch', target.dispatch_id]);
  return buildSubject(prefix, parts);
}
