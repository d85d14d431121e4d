-- POST the flask-json-post scenario's 10 KiB JSON body, bench/.data/api.json
-- (written by run.py, which sends the same bytes in its probe request).
local dir = debug.getinfo(1, "S").source:match("^@(.*/)") or "./"
dofile(dir .. "report.lua")

local file = assert(io.open(dir .. "../.data/api.json", "rb"))
wrk.method = "POST"
wrk.body = file:read("*a")
file:close()
wrk.headers["Content-Type"] = "application/json"
