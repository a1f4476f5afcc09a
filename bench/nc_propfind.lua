-- wrk script for bench/nc_propfind.sh.
--   wrk ... -s nc_propfind.lua <url> -- direct
--       PROPFIND /remote.php/dav/files/alice/ (Depth: 1) straight to the fake Nextcloud
--   wrk ... -s nc_propfind.lua <url> -- waggle <file from `nc_sign.py propfind`>
--       replays the pre-signed callbacks round-robin, each exactly once: POST /nc<target> with
--       X-HTTP-Method-Override: PROPFIND. If the run needs more requests than the file holds, it wraps
--       around, the replays get 401 (nonce cache) and wrk counts them as non-2xx: size the file larger.
-- AppAPI headers given with -H are kept (copied from wrk.headers).
local mode, n, i, static = nil, 0, 0, nil
local nonces, sigs = {}, {}
local created, expires, keyid, target, user
wrapped = 0

local function base_headers()
  local h = {}
  for k, v in pairs(wrk.headers) do h[k] = v end
  h["Depth"] = "1"
  return h
end

function init(args)
  mode = args[1] or "direct"
  if mode == "direct" then
    static = wrk.format("PROPFIND", "/remote.php/dav/files/alice/", base_headers(), nil)
    return
  end
  local f = assert(io.open(args[2], "r"))
  created, expires, keyid, target, user = f:read("*l"):match("^(%d+) (%d+) (%S+) (%S+) (%S+)$")
  for line in f:lines() do
    local a, b = line:match("^(%S+) (%S+)$")
    n = n + 1
    nonces[n], sigs[n] = a, b
  end
  f:close()
end

function request()
  if static then return static end
  i = i + 1
  if i > n then i = 1; wrapped = wrapped + 1 end
  local h = base_headers()
  h["X-HTTP-Method-Override"] = "PROPFIND"
  h["X-Waggle-Target"] = target
  h["X-Waggle-User"] = user
  h["Content-Digest"] = "sha-256=:47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU=:"
  h["Signature-Input"] = 'sig1=("@method" "x-http-method-override" "x-waggle-target" "x-waggle-user" "content-digest");created='
    .. created .. ';expires=' .. expires .. ';nonce="' .. nonces[i] .. '";keyid="' .. keyid
    .. '";alg="hmac-sha256";tag="waggle-nc"'
  h["Signature"] = "sig1=:" .. sigs[i] .. ":"
  return wrk.format("POST", "/nc" .. target, h, "")
end
