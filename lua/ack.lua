-- ack(id, token, now): KEYS[2] record. ARGV: id, token, now. Reply: {'ok'}.
return run(function()
  ack_dispatch(arg(1), arg(2), arg(3))
  return { 'ok' }
end)
