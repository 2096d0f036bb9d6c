/**
 * Wire codec round trips against every JSON example of contract.md §4: `encode(decode(example))` must equal
 * `JSON.stringify(JSON.parse(example))` byte for byte (field order, omitted nulls, tags). Corrupt input must
 * raise `StorageError` kind `Serialization`, never crash or pass.
 */
import { describe, expect, it } from 'vitest';
import {
  decodeLiveRunCommand,
  decodeRunDispatch,
  encodeLiveRunCommand,
  encodeRunDispatch,
  liveRunTargetFromWire,
  liveRunTargetToWire,
  mailboxInterruptDetailsFromWire,
  mailboxInterruptFromWire,
  mailboxInterruptToWire,
  runDispatchFromWire,
  runDispatchResultFromWire,
  runDispatchResultToWire,
  runDispatchToWire,
  terminationFromWire,
  terminationToWire,
} from '../../src/contract/codec.js';
import { StorageError } from '../../src/contract/errors.js';
import type { RunDispatch } from '../../src/contract/types.js';

const canonical = (json: string): string => JSON.stringify(JSON.parse(json));

function expectSerialization(action: () => unknown, label = ''): StorageError {
  let caught: unknown = null;
  try {
    action();
  } catch (err) {
    caught = err;
  }
  expect(caught, `${label}: expected a Serialization error`).toBeInstanceOf(StorageError);
  const err = caught as StorageError;
  expect(err.kind, `${label}: ${err.message}`).toBe('Serialization');
  expect(err.message.startsWith('serialization error: ')).toBe(true);
  return err;
}

// ---- §4.4 examples (verbatim) and the two variants described in prose ----

const QUEUED_FRESH = `{
  "dispatch_id": "01906a6e-3c1f-7b2a-9f00-1a2b3c4d5e6f",
  "thread_id": "thread-abc",
  "run_id": "run-001",
  "priority": 128,
  "dedupe_key": null,
  "dispatch_epoch": 0,
  "status": "Queued",
  "available_at": 1718000000000,
  "attempt_count": 0,
  "max_attempts": 5,
  "last_error": null,
  "claim_token": null,
  "claimed_by": null,
  "lease_until": null,
  "created_at": 1718000000000,
  "updated_at": 1718000000000
}`;

const CLAIMED_WITH_RESULT = `{
  "dispatch_id": "01906a6e-3c1f-7b2a-9f00-1a2b3c4d5e6f",
  "thread_id": "thread-abc",
  "run_id": "run-001",
  "priority": 128,
  "dedupe_key": "req-xyz",
  "dispatch_epoch": 1,
  "status": "Claimed",
  "available_at": 1718000000000,
  "attempt_count": 0,
  "max_attempts": 5,
  "last_error": null,
  "claim_token": "01906a6e-40aa-7c11-8e00-aaaaaaaaaaaa",
  "claimed_by": "node-a",
  "lease_until": 1718000031000,
  "dispatch_instance_id": "01906a6e-4100-7d22-8f00-bbbbbbbbbbbb",
  "run_status": "done",
  "termination": {"type": "natural_end"},
  "run_response": "done",
  "completed_at": 1718000002000,
  "created_at": 1718000000000,
  "updated_at": 1718000002000
}`;

/** "After ack at 1718000002500": Acked, claim fields null, projection kept, completed_at = updated_at. */
const ACKED = `{
  "dispatch_id": "01906a6e-3c1f-7b2a-9f00-1a2b3c4d5e6f",
  "thread_id": "thread-abc",
  "run_id": "run-001",
  "priority": 128,
  "dedupe_key": "req-xyz",
  "dispatch_epoch": 1,
  "status": "Acked",
  "available_at": 1718000000000,
  "attempt_count": 0,
  "max_attempts": 5,
  "last_error": null,
  "claim_token": null,
  "claimed_by": null,
  "lease_until": null,
  "dispatch_instance_id": "01906a6e-4100-7d22-8f00-bbbbbbbbbbbb",
  "run_status": "done",
  "termination": {"type": "natural_end"},
  "run_response": "done",
  "completed_at": 1718000002500,
  "created_at": 1718000000000,
  "updated_at": 1718000002500
}`;

/** "Superseded by interrupt (memory)": reason set, completed_at = updated_at = interrupt time, epoch unchanged. */
const SUPERSEDED = `{
  "dispatch_id": "01906a6e-3c1f-7b2a-9f00-1a2b3c4d5e6f",
  "thread_id": "thread-abc",
  "run_id": "run-001",
  "priority": 128,
  "dedupe_key": null,
  "dispatch_epoch": 0,
  "status": "Superseded",
  "available_at": 1718000000000,
  "attempt_count": 0,
  "max_attempts": 5,
  "last_error": "queued dispatch superseded by interrupt",
  "claim_token": null,
  "claimed_by": null,
  "lease_until": null,
  "completed_at": 1718000005000,
  "created_at": 1718000000000,
  "updated_at": 1718000005000
}`;

/** A dead-lettered record with every projection field, including run_error and a valued termination. */
const DEAD_LETTER_FULL = `{"dispatch_id":"d-x","thread_id":"t","run_id":"r","priority":0,"dedupe_key":"k","dispatch_epoch":3,"status":"DeadLetter","available_at":5,"attempt_count":5,"max_attempts":5,"last_error":"boom","claim_token":null,"claimed_by":null,"lease_until":null,"dispatch_instance_id":"i","run_status":"done","termination":{"type":"error","value":"boom"},"run_response":"partial","run_error":"boom","completed_at":9,"created_at":1,"updated_at":9}`;

const DISPATCH_EXAMPLES: [string, string][] = [
  ['Queued (fresh)', QUEUED_FRESH],
  ['Claimed with a recorded run result', CLAIMED_WITH_RESULT],
  ['Acked (prose)', ACKED],
  ['Superseded by interrupt (prose)', SUPERSEDED],
  ['DeadLetter with the full projection', DEAD_LETTER_FULL],
];

describe('§4.3 TerminationReason', () => {
  const examples = [
    '{"type":"natural_end"}',
    '{"type":"behavior_requested"}',
    '{"type":"stopped","value":{"code":"max_rounds","detail":"reached 10 rounds"}}',
    '{"type":"stopped","value":{"code":"max_rounds"}}',
    '{"type":"cancelled"}',
    '{"type":"blocked","value":"needs approval"}',
    '{"type":"suspended"}',
    '{"type":"error","value":"boom"}',
  ];
  for (const example of examples) {
    it(`round-trips ${example}`, () => {
      expect(JSON.stringify(terminationToWire(terminationFromWire(JSON.parse(example))))).toBe(
        canonical(example),
      );
    });
  }

  it('accepts the legacy alias plugin_requested as behavior_requested', () => {
    const t = terminationFromWire({ type: 'plugin_requested' });
    expect(t).toEqual({ type: 'behavior_requested' });
    expect(JSON.stringify(terminationToWire(t))).toBe('{"type":"behavior_requested"}');
  });

  it('omits a null stopped detail', () => {
    const t = terminationFromWire({ type: 'stopped', value: { code: 'c', detail: null } });
    expect(JSON.stringify(terminationToWire(t))).toBe('{"type":"stopped","value":{"code":"c"}}');
  });

  it('rejects unknown or malformed reasons with Serialization', () => {
    for (const bad of [
      { type: 'exploded' },
      { type: 'error' },
      { type: 'blocked', value: 5 },
      { type: 'stopped', value: {} },
      'natural_end',
      null,
      { value: 'x' },
    ]) {
      expectSerialization(() => terminationFromWire(bad), JSON.stringify(bad));
    }
  });
});

describe('§4.4 RunDispatch', () => {
  for (const [label, example] of DISPATCH_EXAMPLES) {
    it(`round-trips byte for byte: ${label}`, () => {
      expect(encodeRunDispatch(decodeRunDispatch(example))).toBe(canonical(example));
      expect(JSON.stringify(runDispatchToWire(runDispatchFromWire(JSON.parse(example))))).toBe(
        canonical(example),
      );
    });
  }

  it('decodes into a full record: omitted projection fields become null', () => {
    const d = decodeRunDispatch(QUEUED_FRESH);
    const expected: RunDispatch = {
      dispatch_id: '01906a6e-3c1f-7b2a-9f00-1a2b3c4d5e6f',
      thread_id: 'thread-abc',
      run_id: 'run-001',
      priority: 128,
      dedupe_key: null,
      dispatch_epoch: 0,
      status: 'Queued',
      available_at: 1718000000000,
      attempt_count: 0,
      max_attempts: 5,
      last_error: null,
      claim_token: null,
      claimed_by: null,
      lease_until: null,
      dispatch_instance_id: null,
      run_status: null,
      termination: null,
      run_response: null,
      run_error: null,
      completed_at: null,
      created_at: 1718000000000,
      updated_at: 1718000000000,
    };
    expect(d).toEqual(expected);
  });

  it('fills missing optional input fields with the §2.2 defaults and ignores unknown fields', () => {
    const d = decodeRunDispatch(
      '{"dispatch_id":"d","thread_id":"t","run_id":"r","created_at":7,"extra":{"x":1}}',
    );
    expect(encodeRunDispatch(d)).toBe(
      '{"dispatch_id":"d","thread_id":"t","run_id":"r","priority":128,"dedupe_key":null,"dispatch_epoch":0,' +
        '"status":"Queued","available_at":7,"attempt_count":0,"max_attempts":5,"last_error":null,' +
        '"claim_token":null,"claimed_by":null,"lease_until":null,"created_at":7,"updated_at":7}',
    );
  });

  it('accepts explicit nulls for the omitted-when-null fields and omits them on output', () => {
    const withNulls = {
      ...JSON.parse(QUEUED_FRESH),
      dispatch_instance_id: null,
      run_status: null,
      termination: null,
      run_response: null,
      run_error: null,
      completed_at: null,
    };
    expect(encodeRunDispatch(runDispatchFromWire(withNulls))).toBe(canonical(QUEUED_FRESH));
  });

  describe('corrupt records → Serialization', () => {
    const base = (): Record<string, unknown> => JSON.parse(QUEUED_FRESH) as Record<string, unknown>;
    const claimed = (): Record<string, unknown> => JSON.parse(CLAIMED_WITH_RESULT) as Record<string, unknown>;
    const cases: [string, () => unknown][] = [
      ['invalid status', () => ({ ...base(), status: 'Running' })],
      ['lowercase status', () => ({ ...base(), status: 'queued' })],
      ['numeric status', () => ({ ...base(), status: 1 })],
      ['string created_at', () => ({ ...base(), created_at: '1718000000000' })],
      ['string available_at', () => ({ ...base(), available_at: 'soon' })],
      ['null updated_at', () => ({ ...base(), updated_at: null })],
      ['fractional lease_until', () => ({ ...claimed(), lease_until: 1.5 })],
      ['negative attempt_count', () => ({ ...base(), attempt_count: -1 })],
      ['unsafe created_at', () => ({ ...base(), created_at: Number.MAX_SAFE_INTEGER + 1 })],
      ['priority 256', () => ({ ...base(), priority: 256 })],
      ['missing dispatch_id', () => ({ ...base(), dispatch_id: undefined })],
      ['numeric thread_id', () => ({ ...base(), thread_id: 5 })],
      ['blank run_id', () => ({ ...base(), run_id: '  ' })],
      ['max_attempts 0', () => ({ ...base(), max_attempts: 0 })],
      ['attempt_count > max_attempts', () => ({ ...base(), attempt_count: 6 })],
      ['Claimed without token', () => ({ ...claimed(), claim_token: null })],
      ['Claimed with blank claimed_by', () => ({ ...claimed(), claimed_by: ' ' })],
      ['Claimed without lease_until', () => ({ ...claimed(), lease_until: null })],
      ['Queued with projection', () => ({ ...base(), run_status: 'done' })],
      ['Queued with dispatch_instance_id', () => ({ ...base(), dispatch_instance_id: 'i' })],
      ['Queued with claim fields', () => ({ ...base(), claim_token: 'tok' })],
      ['Queued with completed_at', () => ({ ...base(), completed_at: 5 })],
      ['terminal without completed_at', () => ({ ...JSON.parse(ACKED), completed_at: null })],
      ['terminal with a lease', () => ({ ...JSON.parse(ACKED), lease_until: 5 })],
      ['unknown run_status', () => ({ ...claimed(), run_status: 'finished' })],
      ['unknown termination', () => ({ ...claimed(), termination: { type: 'exploded' } })],
      ['array record', () => [base()]],
      ['null record', () => null],
      ['string record', () => 'dispatch'],
    ];
    for (const [label, make] of cases) {
      it(label, () => {
        const value = make();
        expectSerialization(() => runDispatchFromWire(value), label);
        if (value !== undefined) expectSerialization(() => decodeRunDispatch(JSON.stringify(value)), label);
      });
    }

    it('invalid JSON text', () => {
      expectSerialization(() => decodeRunDispatch('{"dispatch_id":'));
      expectSerialization(() => decodeRunDispatch(''));
    });

    it('names the offending field', () => {
      expect(
        expectSerialization(() => runDispatchFromWire({ ...base(), status: 'Running' })).message,
      ).toContain('status');
      expect(
        expectSerialization(() => runDispatchFromWire({ ...base(), created_at: 'x' })).message,
      ).toContain('created_at');
      expect(
        expectSerialization(() => runDispatchFromWire({ ...claimed(), claim_token: null })).message,
      ).toContain('claim_token');
    });
  });
});

describe('§4.5 RunDispatchResult', () => {
  const examples = [
    '{"run_id":"run-001","dispatch_instance_id":"0190...","status":"done","termination":{"type":"natural_end"},"response":"ok"}',
    '{"run_id":"run-1","dispatch_instance_id":"dispatch-1","status":"done","termination":{"type":"blocked","value":"needs approval"},"error":"needs approval"}',
    '{"run_id":"r","dispatch_instance_id":"i","status":"waiting","termination":{"type":"suspended"}}',
    '{"run_id":"r","dispatch_instance_id":"i","status":"running"}',
  ];
  for (const example of examples) {
    it(`round-trips ${example}`, () => {
      expect(JSON.stringify(runDispatchResultToWire(runDispatchResultFromWire(JSON.parse(example))))).toBe(
        canonical(example),
      );
    });
  }

  it('omits null termination/response/error', () => {
    const r = runDispatchResultFromWire({
      run_id: 'r',
      dispatch_instance_id: 'i',
      status: 'done',
      termination: null,
      response: null,
      error: null,
    });
    expect(JSON.stringify(runDispatchResultToWire(r))).toBe(
      '{"run_id":"r","dispatch_instance_id":"i","status":"done"}',
    );
  });

  it('rejects unknown statuses and missing ids with Serialization', () => {
    expectSerialization(() =>
      runDispatchResultFromWire({ run_id: 'r', dispatch_instance_id: 'i', status: 'Done' }),
    );
    expectSerialization(() => runDispatchResultFromWire({ dispatch_instance_id: 'i', status: 'done' }));
    expectSerialization(() => runDispatchResultFromWire({ run_id: 'r', status: 'done' }));
  });
});

describe('§4.6 MailboxInterrupt / MailboxInterruptDetails', () => {
  const summary = '{"new_dispatch_epoch":5,"active_dispatch":null,"superseded_count":3}';
  const details =
    `{"new_dispatch_epoch":5,"active_dispatch":${canonical(CLAIMED_WITH_RESULT)},"superseded_count":1,` +
    `"superseded_dispatches":[${canonical(SUPERSEDED)}]}`;

  it('round-trips the summary example', () => {
    expect(JSON.stringify(mailboxInterruptToWire(mailboxInterruptFromWire(JSON.parse(summary))))).toBe(
      canonical(summary),
    );
  });

  it('round-trips the details example with concrete records', () => {
    expect(JSON.stringify(mailboxInterruptToWire(mailboxInterruptDetailsFromWire(JSON.parse(details))))).toBe(
      canonical(details),
    );
  });

  it('superseded_dispatches defaults to [] when missing; a summary parser ignores it', () => {
    const d = mailboxInterruptDetailsFromWire(JSON.parse(summary));
    expect(d.superseded_dispatches).toEqual([]);
    expect(JSON.stringify(mailboxInterruptToWire(d))).toBe(
      '{"new_dispatch_epoch":5,"active_dispatch":null,"superseded_count":3,"superseded_dispatches":[]}',
    );
    const s = mailboxInterruptFromWire(JSON.parse(details));
    expect('superseded_dispatches' in s).toBe(false);
    expect(JSON.stringify(mailboxInterruptToWire(s))).toBe(
      `{"new_dispatch_epoch":5,"active_dispatch":${canonical(CLAIMED_WITH_RESULT)},"superseded_count":1}`,
    );
  });

  it('rejects corrupt interrupts with Serialization', () => {
    expectSerialization(() => mailboxInterruptFromWire(null));
    expectSerialization(() => mailboxInterruptFromWire({ new_dispatch_epoch: -1, superseded_count: 0 }));
    expectSerialization(() => mailboxInterruptFromWire({ new_dispatch_epoch: '5', superseded_count: 0 }));
    expectSerialization(() => mailboxInterruptFromWire({ new_dispatch_epoch: 5, superseded_count: 1.5 }));
    expectSerialization(() =>
      mailboxInterruptDetailsFromWire({
        new_dispatch_epoch: 5,
        superseded_count: 0,
        superseded_dispatches: {},
      }),
    );
    expectSerialization(() =>
      mailboxInterruptDetailsFromWire({
        new_dispatch_epoch: 5,
        superseded_count: 1,
        active_dispatch: { ...(JSON.parse(CLAIMED_WITH_RESULT) as object), claim_token: null },
      }),
    );
  });
});

describe('§4.7 LiveRunCommand', () => {
  const examples = [
    '{"Messages":[{"id":"0190...","role":"user","content":[{"type":"text","text":"hi"}]}]}',
    '"PendingBoundaryWake"',
    '"Cancel"',
    '{"Decision":[["call_1",{"decision_id":"d1","action":"resume","result":{"approved":true},"reason":"user approved","updated_at":1718000000000}]]}',
  ];
  for (const example of examples) {
    it(`round-trips ${example}`, () => {
      expect(encodeLiveRunCommand(decodeLiveRunCommand(example))).toBe(canonical(example));
    });
  }

  it('rejects unknown variants and malformed payloads with Serialization', () => {
    for (const bad of [
      '"Pause"',
      '"cancel"',
      '{"Steer":[]}',
      '{"Messages":"hi"}',
      '{"Messages":[],"Decision":[]}',
      '{"Decision":[["call_1"]]}',
      '{"Decision":[["call_1",{"action":"approve"}]]}',
      '{"Messages":[{"role":"robot","content":[]}]}',
      '{"Messages":[{"role":"user","content":[{"type":"hologram"}]}]}',
      '{"Messages":[{"role":"user"}]}',
      'null',
      '42',
      '["Cancel"]',
      '{"Cancel":null}',
      'not json',
    ]) {
      expectSerialization(() => decodeLiveRunCommand(bad), bad);
    }
  });
});

describe('§4.8 LiveRunTarget', () => {
  for (const example of [
    '{"thread_id":"thread-abc","run_id":"run-001","dispatch_id":"0190..."}',
    '{"thread_id":"thread-abc","run_id":"run-001"}',
  ]) {
    it(`round-trips ${example}`, () => {
      expect(JSON.stringify(liveRunTargetToWire(liveRunTargetFromWire(JSON.parse(example))))).toBe(
        canonical(example),
      );
    });
  }

  it('omits a null dispatch_id', () => {
    const t = liveRunTargetFromWire({ thread_id: 't', run_id: 'r', dispatch_id: null });
    expect(t).toEqual({ thread_id: 't', run_id: 'r', dispatch_id: null });
    expect(JSON.stringify(liveRunTargetToWire(t))).toBe('{"thread_id":"t","run_id":"r"}');
  });

  it('rejects malformed targets with Serialization', () => {
    expectSerialization(() => liveRunTargetFromWire({ thread_id: 't' }));
    expectSerialization(() => liveRunTargetFromWire({ thread_id: 1, run_id: 'r' }));
    expectSerialization(() => liveRunTargetFromWire(null));
  });
});

describe('§4.9 Message (inside Messages commands)', () => {
  const examples = [
    '{"id":"m1","role":"user","content":[{"type":"text","text":"Hello"}]}',
    '{"id":"m2","role":"assistant","content":[{"type":"text","text":"Searching"}],"tool_calls":[{"id":"call_1","name":"search","arguments":{"q":"x"}}]}',
    '{"id":"m3","role":"tool","content":[{"type":"text","text":"result"}],"tool_call_id":"call_1"}',
    '{"id":"m4","role":"system","content":[{"type":"text","text":"reminder"}],"visibility":"internal"}',
    '{"id":"m5","role":"user","content":[{"type":"text","text":"from agent B"}],"metadata":{"sender_agent_id":"agent-b"}}',
    // Every ContentBlock and MediaSource shape of §4.9, and a full metadata object.
    '{"role":"user","content":[{"type":"image","source":{"type":"url","url":"https://x/y.png"}},{"type":"image","source":{"type":"base64","media_type":"image/png","data":"iVBORw0KGgo="}}]}',
    '{"id":"m6","role":"user","content":[{"type":"document","source":{"type":"url","url":"https://x/a.pdf"},"title":"A"},{"type":"document","source":{"type":"url","url":"https://x/b.pdf"}}]}',
    '{"id":"m7","role":"user","content":[{"type":"audio","source":{"type":"url","url":"https://x/a.mp3"}},{"type":"video","source":{"type":"base64","media_type":"video/mp4","data":"AAAA"}}]}',
    '{"id":"m8","role":"assistant","content":[{"type":"thinking","thinking":"hmm"},{"type":"tool_use","id":"tu1","name":"calc","input":{"expr":"1+1","n":[1,2.5,null,true]}}]}',
    '{"id":"m9","role":"tool","content":[{"type":"tool_result","tool_use_id":"tu1","content":[{"type":"text","text":"2"},{"type":"tool_result","tool_use_id":"nested","content":[]}]}],"tool_call_id":"tu1"}',
    '{"id":"m10","role":"assistant","content":[],"metadata":{"run_id":"r1","step_index":3,"sender_agent_id":"a","compaction":{"from_seq":1,"to_seq":9}}}',
    '{"id":"m11","role":"user","content":[{"type":"text","text":"ünïcødé 🚀 \\"quoted\\" \\\\ line\\nbreak"}]}',
  ];
  for (const example of examples) {
    it(`round-trips ${example}`, () => {
      const command = `{"Messages":[${example}]}`;
      expect(encodeLiveRunCommand(decodeLiveRunCommand(command))).toBe(canonical(command));
    });
  }

  it('round-trips all examples together in one command, in order', () => {
    const command = `{"Messages":[${examples.join(',')}]}`;
    expect(encodeLiveRunCommand(decodeLiveRunCommand(command))).toBe(canonical(command));
  });

  it('omits visibility "all" and null optional fields', () => {
    const command =
      '{"Messages":[{"id":null,"role":"user","content":[],"tool_calls":null,"tool_call_id":null,"visibility":"all","metadata":null}]}';
    expect(encodeLiveRunCommand(decodeLiveRunCommand(command))).toBe(
      '{"Messages":[{"role":"user","content":[]}]}',
    );
  });
});

describe('§4.10 ToolCallResume (inside Decision commands)', () => {
  const examples = [
    '{"decision_id":"d1","action":"resume","result":{"approved":true},"reason":"user approved","updated_at":1234567890}',
    '{"decision_id":"d1","action":"cancel","updated_at":0}',
  ];
  for (const example of examples) {
    it(`round-trips ${example}`, () => {
      const command = `{"Decision":[["call_1",${example}]]}`;
      expect(encodeLiveRunCommand(decodeLiveRunCommand(command))).toBe(canonical(command));
    });
  }

  it('defaults decision_id to "" and updated_at to 0, omits null result/reason', () => {
    const command = '{"Decision":[["call_1",{"action":"cancel","result":null,"reason":null}]]}';
    expect(encodeLiveRunCommand(decodeLiveRunCommand(command))).toBe(
      '{"Decision":[["call_1",{"decision_id":"","action":"cancel","updated_at":0}]]}',
    );
  });

  it('keeps several decisions in order', () => {
    const command = `{"Decision":[["call_1",${examples[0]}],["call_2",${examples[1]}]]}`;
    expect(encodeLiveRunCommand(decodeLiveRunCommand(command))).toBe(canonical(command));
  });
});
