-- record_dispatch_start(id, token, instance, now): KEYS[2] record. ARGV: id, token, instance, now.
-- Status stays Claimed. Reply: {'ok'}.
return run(function()
  start_dispatch(arg(1), arg(2), arg(3), arg(4))
  return { 'ok' }
end)
