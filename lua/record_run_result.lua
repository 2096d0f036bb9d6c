-- record_run_result(id, token, result, now): only KEYS[1] (the record's key is derived from the id).
-- ARGV: id, token, now, run_id, dispatch_instance_id, status, then (flag, value) for termination (JSON),
-- response and error; flag '1' = present, '0' = null. Status stays Claimed. Reply: {'ok'}.
return run(function()
  record_result(arg(1), arg(2), arg(3), 4)
  return { 'ok' }
end)
