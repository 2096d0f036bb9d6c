-- record_run_result(id, token, result, now): KEYS[2] record.
-- ARGV: id, token, now, run_id, dispatch_instance_id, status, then (flag, value) for termination (JSON),
-- response and error; flag '1' = present, '0' = null. Status stays Claimed. Reply: {'ok'}.
return run(function()
  record_result(arg(1), arg(2), arg(3), 4)
  return { 'ok' }
end)
