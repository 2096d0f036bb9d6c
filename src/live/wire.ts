/**
 * Live-command payload codecs: the `LiveRunCommand` JSON of the upstream wire format, or msgpack.
 *
 * JSON is the upstream wire format: exactly `encodeLiveRunCommand`'s bytes and no headers. Producers may be
 * configured to send msgpack of the same wire object instead, tagged `Content-Type: application/msgpack`;
 * receivers accept both. Anything inbound is untrusted: decoding rebuilds a plain JSON tree (no Dates, Maps,
 * Buffers, bigints or prototype tricks from msgpack extensions) before the contract schema validates it.
 */
import { Packr, Unpackr } from 'msgpackr';
import { StorageError } from '../contract/errors.js';
import {
  decodeLiveRunCommand,
  encodeLiveRunCommand,
  liveRunCommandFromWire,
  liveRunCommandToWire,
} from '../contract/codec.js';
import type { JsonValue, LiveRunCommand } from '../contract/types.js';

export type LiveCodec = 'json' | 'msgpack';

export const CONTENT_TYPE_HEADER = 'Content-Type';
export const JSON_CONTENT_TYPE = 'application/json';
export const MSGPACK_CONTENT_TYPE = 'application/msgpack';

/** Deepest nesting accepted in an inbound payload; deeper trees are rejected rather than recursed into. */
export const MAX_PAYLOAD_DEPTH = 128;

export interface EncodedLivePayload {
  data: Uint8Array;
  /** Header value to send, or null for none (JSON goes out header-less, byte-identical to upstream). */
  contentType: string | null;
}

// Standard msgpack maps (no msgpackr record extension) so any msgpack decoder can read what we send;
// 64-bit integers decode to bigint, which the tree check narrows to a number when it is safe.
const packr = new Packr({ useRecords: false });
const unpackr = new Unpackr({ useRecords: false, mapsAsObjects: true, int64AsType: 'bigint' });
const utf8 = new TextEncoder();
const utf8Strict = new TextDecoder('utf-8', { fatal: true });

/** Encode an already validated command. Throws `Serialization` if it cannot be encoded. */
export function encodeLivePayload(command: LiveRunCommand, codec: LiveCodec): EncodedLivePayload {
  try {
    if (codec === 'json') return { data: utf8.encode(encodeLiveRunCommand(command)), contentType: null };
    const packed = packr.pack(liveRunCommandToWire(command));
    return {
      data: new Uint8Array(packed.buffer, packed.byteOffset, packed.byteLength),
      contentType: MSGPACK_CONTENT_TYPE,
    };
  } catch (err) {
    throw StorageError.serialization(`live command: cannot encode as ${codec} (${errorText(err)})`);
  }
}

/** Which codec a `Content-Type` header value names; null for one we do not accept. */
export function codecForContentType(contentType: string | null | undefined): LiveCodec | null {
  if (contentType == null || contentType.trim() === '') return 'json';
  const media = (contentType.split(';')[0] ?? '').trim().toLowerCase();
  if (media === JSON_CONTENT_TYPE) return 'json';
  if (media === MSGPACK_CONTENT_TYPE || media === 'application/x-msgpack') return 'msgpack';
  return null;
}

/** Decode an inbound payload. Throws `Serialization` for anything that is not a known `LiveRunCommand`. */
export function decodeLivePayload(data: Uint8Array, contentType: string | null | undefined): LiveRunCommand {
  const codec = codecForContentType(contentType);
  if (codec === null)
    throw StorageError.serialization(`live command: unsupported content type ${JSON.stringify(contentType)}`);
  try {
    if (codec === 'json') return decodeLiveRunCommand(utf8Strict.decode(data));
    return liveRunCommandFromWire(toJsonTree(unpackr.unpack(data), 0));
  } catch (err) {
    if (err instanceof StorageError) throw err;
    // Invalid UTF-8, truncated msgpack, stack exhaustion in the schema on hostile nesting, ...
    throw StorageError.serialization(`live command: invalid ${codec} payload (${errorText(err)})`);
  }
}

/** Copy an unpacked value into a fresh plain JSON tree, rejecting anything JSON cannot express. */
function toJsonTree(value: unknown, depth: number): JsonValue {
  if (depth > MAX_PAYLOAD_DEPTH) throw StorageError.serialization('live command: payload nested too deeply');
  if (value === null || typeof value === 'string' || typeof value === 'boolean') return value;
  if (typeof value === 'number') {
    if (!Number.isFinite(value)) throw StorageError.serialization('live command: non-finite number');
    return value;
  }
  if (typeof value === 'bigint') {
    const n = Number(value);
    if (!Number.isSafeInteger(n)) throw StorageError.serialization('live command: integer beyond 2^53');
    return n;
  }
  if (Array.isArray(value)) return value.map((v) => toJsonTree(v, depth + 1));
  if (typeof value === 'object' && Object.getPrototypeOf(value) === Object.prototype) {
    const out: { [key: string]: JsonValue } = {};
    for (const [k, v] of Object.entries(value)) {
      // defineProperty so a `__proto__` key stays an ordinary own property, as JSON.parse leaves it.
      Object.defineProperty(out, k, {
        value: toJsonTree(v, depth + 1),
        enumerable: true,
        writable: true,
        configurable: true,
      });
    }
    return out;
  }
  throw StorageError.serialization(`live command: msgpack value of type ${describe(value)} is not JSON`);
}

function describe(value: unknown): string {
  if (typeof value !== 'object' || value === null) return typeof value;
  return (value as { constructor?: { name?: string } }).constructor?.name ?? 'object';
}

function errorText(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}
