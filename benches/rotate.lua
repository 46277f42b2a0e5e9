-- wrk script of the load benchmark's many-users variants (benches/load.sh):
-- every request carries the next token of a file (one per line), in rotation.
-- Requests are formatted once, at start-up, so that choosing a token costs the
-- client one table lookup per request.
--
--   wrk ... -s benches/rotate.lua http://127.0.0.1:PORT/ -- TOKENS_FILE

local requests = {}
local n = 0
local i = 0

function init(args)
    for line in io.lines(args[1]) do
        if #line > 0 then
            n = n + 1
            requests[n] = wrk.format("GET", "/", { ["Authorization"] = "Bearer " .. line })
        end
    end
    if n == 0 then
        error("rotate.lua: no tokens in " .. tostring(args[1]))
    end
    -- Each wrk thread starts at a different point of the rotation.
    i = math.random(n) - 1
end

function request()
    i = i % n + 1
    return requests[i]
end
