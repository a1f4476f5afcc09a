-- wrk script: POST a 300-byte JSON body (the size of one Waggle event), application/json.
wrk.method = "POST"
wrk.body = '{"data":"' .. string.rep("a", 289) .. '"}'
wrk.headers["Content-Type"] = "application/json"
