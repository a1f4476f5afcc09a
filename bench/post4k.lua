-- wrk script: POST with a 4 KiB body (4096 x "a"), application/octet-stream. Extra headers come from -H.
wrk.method = "POST"
wrk.body = string.rep("a", 4096)
wrk.headers["Content-Type"] = "application/octet-stream"
