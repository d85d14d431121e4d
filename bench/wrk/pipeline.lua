-- HTTP/1.1 pipelining: every write carries DEPTH GET requests (default 16;
-- pass another depth after "--" on wrk's command line). wrk counts each
-- response, so req/s is responses per second.
local dir = debug.getinfo(1, "S").source:match("^@(.*/)") or "./"
dofile(dir .. "report.lua")

init = function(args)
  local depth = tonumber(args[1]) or 16
  local batch = {}
  for i = 1, depth do
    batch[i] = wrk.format(nil, wrk.path)
  end
  pipelined = table.concat(batch)
end

request = function()
  return pipelined
end
