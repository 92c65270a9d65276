-- POST /predict as the original clients do; the summary line comes from wrk_summary.lua.
wrk.method = "POST"
wrk.body = [[{"data":"What's%20up?"}]]
wrk.headers["Content-Type"] = "text/plain"

done = dofile(os.getenv("WRK_SUMMARY_LUA"))
