import { Packr, pack, unpack } from 'msgpackr';
import { describe, expect, it } from 'vitest';
import { encodeLiveRunCommand } from '../../src/contract/codec.js';
import { StorageError } from '../../src/contract/errors.js';
import {
  MSGPACK_CONTENT_TYPE,
  codecForContentType,
  decodeLivePayload,
  encodeLivePayload,
} from '../../src/live/wire.js';
import { ALL_VARIANTS, SPEC_EXAMPLES } from './fixtures/commands.js';

const text = (b: Uint8Array): string => Buffer.from(b).toString('utf8');
const bytes = (s: string): Uint8Array => new Uint8Array(Buffer.from(s, 'utf8'));

function expectSerialization(fn: () => unknown): StorageError {
  try {
    fn();
  } catch (err) {
    expect(err).toBeInstanceOf(StorageError);
    expect((err as StorageError).kind).toBe('Serialization');
    return err as StorageError;
  }
  throw new Error('expected a Serialization error');
}

describe('JSON payloads', () => {
  it.each(SPEC_EXAMPLES)('are byte-identical to contract.md §4.7: $json', ({ command, json }) => {
    const enc = encodeLivePayload(command, 'json');
    expect(enc.contentType).toBeNull();
    expect(text(enc.data)).toBe(json);
    expect(encodeLiveRunCommand(decodeLivePayload(bytes(json), undefined))).toBe(json);
  });

  it.each(ALL_VARIANTS)('round-trip $name', ({ command }) => {
    const enc = encodeLivePayload(command, 'json');
    expect(text(enc.data)).toBe(encodeLiveRunCommand(command));
    for (const ct of [
      undefined,
      null,
      '',
      'application/json',
      'application/json; charset=utf-8',
      'APPLICATION/JSON',
    ]) {
      const back = decodeLivePayload(enc.data, ct);
      expect(encodeLiveRunCommand(back)).toBe(encodeLiveRunCommand(command));
    }
  });
});

describe('msgpack payloads', () => {
  it.each(ALL_VARIANTS)('round-trip $name, tagged application/msgpack', ({ command }) => {
    const enc = encodeLivePayload(command, 'msgpack');
    expect(enc.contentType).toBe(MSGPACK_CONTENT_TYPE);
    // Standard msgpack maps: a plain decoder sees exactly the JSON wire object.
    expect(unpack(enc.data)).toEqual(JSON.parse(encodeLiveRunCommand(command)));
    for (const ct of ['application/msgpack', 'Application/MsgPack', 'application/x-msgpack']) {
      expect(encodeLiveRunCommand(decodeLivePayload(enc.data, ct))).toBe(encodeLiveRunCommand(command));
    }
  });

  it('accept payloads from other msgpack encoders (uint64 timestamps, record extension off)', () => {
    // A bigint updated_at is written as a 64-bit msgpack integer (0xcf / 0xd3), as a Rust encoder writes u64.
    const wire = JSON.parse(SPEC_EXAMPLES[3]!.json) as { Decision: [string, { updated_at: unknown }][] };
    wire.Decision[0]![1].updated_at = BigInt(1718000000000);
    const fromBigIntEncoder = new Packr({ useRecords: false }).pack(wire);
    expect(fromBigIntEncoder.includes(0xcf) || fromBigIntEncoder.includes(0xd3)).toBe(true);
    expect(encodeLiveRunCommand(decodeLivePayload(fromBigIntEncoder, MSGPACK_CONTENT_TYPE))).toBe(
      SPEC_EXAMPLES[3]!.json,
    );
    // A hand-written uint64 (0xcf) updated_at decodes to the same number.
    const decision = decodeLivePayload(
      Buffer.concat([
        Buffer.from([0x81, 0xa8]),
        Buffer.from('Decision'),
        Buffer.from([0x91, 0x92, 0xa2]),
        Buffer.from('tc'),
        Buffer.from([0x82, 0xa6]),
        Buffer.from('action'),
        Buffer.from([0xa6]),
        Buffer.from('resume'),
        Buffer.from([0xaa]),
        Buffer.from('updated_at'),
        Buffer.from([0xcf, 0, 0, 0x01, 0x90, 0x0a, 0x6e, 0x3c, 0x00]),
      ]),
      MSGPACK_CONTENT_TYPE,
    );
    expect(decision).toEqual({
      Decision: [['tc', { decision_id: '', action: 'resume', updated_at: 0x01900a6e3c00 }]],
    });
  });
});

describe('malformed inbound payloads are Serialization errors', () => {
  const cases: [string, Uint8Array, string | undefined][] = [
    ['bad JSON', bytes('{"Messages":['), undefined],
    ['empty JSON body', bytes(''), undefined],
    ['invalid UTF-8', new Uint8Array([0x22, 0xff, 0x22]), undefined],
    ['unknown unit variant', bytes('"Pause"'), undefined],
    ['unknown struct variant', bytes('{"Steer":{"x":1}}'), undefined],
    ['two variants at once', bytes('{"Messages":[],"Decision":[]}'), undefined],
    ['wrong shape', bytes('{"Messages":"hi"}'), undefined],
    ['bad message role', bytes('{"Messages":[{"role":"robot","content":[]}]}'), 'application/json'],
    ['bad decision action', bytes('{"Decision":[["c",{"action":"maybe"}]]}'), undefined],
    ['msgpack body sent as JSON', new Uint8Array(pack('Cancel')), undefined],
    ['JSON body sent as msgpack', bytes('"Cancel"'), MSGPACK_CONTENT_TYPE],
    ['truncated msgpack', new Uint8Array(pack({ Messages: [] })).slice(0, 4), MSGPACK_CONTENT_TYPE],
    ['msgpack unknown variant', new Uint8Array(pack('Pause')), MSGPACK_CONTENT_TYPE],
    [
      'msgpack Date inside JSON',
      new Uint8Array(pack({ Decision: [['c', { action: 'resume', result: new Date(0) }]] })),
      MSGPACK_CONTENT_TYPE,
    ],
    [
      'msgpack binary inside JSON',
      new Uint8Array(pack({ Decision: [['c', { action: 'resume', result: Buffer.from('x') }]] })),
      MSGPACK_CONTENT_TYPE,
    ],
    [
      'msgpack integer beyond 2^53',
      new Uint8Array(
        new Packr({ useRecords: false }).pack({
          Decision: [['c', { action: 'resume', updated_at: 2n ** 60n }]],
        }),
      ),
      MSGPACK_CONTENT_TYPE,
    ],
    [
      'msgpack NaN',
      new Uint8Array(pack({ Decision: [['c', { action: 'resume', result: Number.NaN }]] })),
      MSGPACK_CONTENT_TYPE,
    ],
    ['unknown content type', bytes('"Cancel"'), 'text/plain'],
  ];

  it.each(cases)('%s', (_name, data, contentType) => {
    expectSerialization(() => decodeLivePayload(data, contentType));
  });

  it('hostile nesting is rejected, not a crash', () => {
    // {"Decision":[["c",{"action":"resume","result":[[[...1...]]]}]]} with 100k levels, written by hand.
    const head = Buffer.from(pack({ Decision: [['c', { action: 'resume', result: 0 }]] }));
    const deep = Buffer.concat([
      head.subarray(0, head.length - 1),
      Buffer.alloc(100_000, 0x91),
      Buffer.from([0x01]),
    ]);
    expectSerialization(() => decodeLivePayload(new Uint8Array(deep), MSGPACK_CONTENT_TYPE));
    const shallow = Buffer.concat([
      head.subarray(0, head.length - 1),
      Buffer.alloc(10, 0x91),
      Buffer.from([0x01]),
    ]);
    expect(decodeLivePayload(new Uint8Array(shallow), MSGPACK_CONTENT_TYPE)).toEqual({
      Decision: [['c', { decision_id: '', action: 'resume', result: [[[[[[[[[[1]]]]]]]]]], updated_at: 0 }]],
    });
    const json = `{"Decision":[["c",{"action":"resume","result":${'['.repeat(100_000)}${']'.repeat(100_000)}}]]}`;
    expectSerialization(() => decodeLivePayload(bytes(json), undefined));
  });

  it('a msgpack __proto__ key stays data and never touches prototypes', () => {
    const input: Record<string, unknown> = {};
    Object.defineProperty(input, '__proto__', { value: { polluted: true }, enumerable: true });
    const data = new Uint8Array(
      pack({ Messages: [{ role: 'user', content: [{ type: 'tool_use', id: 'c', name: 'n', input }] }] }),
    );
    const cmd = decodeLivePayload(data, MSGPACK_CONTENT_TYPE) as {
      Messages: { content: { input: object }[] }[];
    };
    const decodedInput = cmd.Messages[0]!.content[0]!.input;
    expect(Object.getPrototypeOf(decodedInput)).toBe(Object.prototype);
    expect(({} as { polluted?: boolean }).polluted).toBeUndefined();
    expect((decodedInput as { polluted?: boolean }).polluted).toBeUndefined();
  });
});

describe('content types', () => {
  it('maps header values to codecs', () => {
    expect(codecForContentType(undefined)).toBe('json');
    expect(codecForContentType('application/json')).toBe('json');
    expect(codecForContentType(' application/msgpack ; x=y')).toBe('msgpack');
    expect(codecForContentType('application/cbor')).toBeNull();
  });
});
