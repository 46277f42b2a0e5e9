-- wrk script of sidecar/bench.sh: GET PATH with the next token of a file (one
-- per line) in rotation, or without a token when no file is given.
--
--   wrk ... -s sidecar/bench.lua http://127.0.0.1:PORT -- PATH [TOKENS_FILE]

local requests = {}
local n = 0
local i = 0

function init(args)
    local path = args[1]
    if args[2] then
        for line in io.lines(args[2]) do
            if #line > 0 then
                n = n + 1
                requests[n] = wrk.format("GET", path, { ["Authorization"] = "Bearer " .. line })
            end
        end
    end
    if n == 0 then
        n = 1
        requests[1] = wrk.format("GET", path)
    end
    i = math.random(n) - 1
end

function request()
    i = i % n + 1
    return requests[i]
end
