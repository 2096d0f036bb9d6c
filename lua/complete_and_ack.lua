-- complete_and_ack(id, token, result, now): record_run_result then ack, in one script (fused,
-- src/contract/fused.ts). A failing first step (stale epoch: superseded + VersionConflict; run_id mismatch:
-- Validation, nothing written) answers its error and the ack never runs. Only KEYS[1] (the record's key is
-- derived from the id).
-- ARGV as record_run_result: id, token, now, run_id, dispatch_instance_id, status, then (flag, value) for
-- termination (JSON), response and error. Reply: {'ok'}.
return run(function()
  local id, token, now_s = arg(1), arg(2), arg(3)
  complete_and_ack(id, token, now_s, 4)
  return { 'ok' }
end)
