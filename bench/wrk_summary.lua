-- The summary line both wrk scripts print for bench/throughput.py: "JSON {...}".
return function(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    'JSON {"requests":%d,"duration_us":%d,"requests_per_s":%.2f,"latency_p50_us":%.0f,'
      .. '"latency_p99_us":%.0f,"latency_max_us":%.0f,"errors_status":%d,"errors_connect":%d,'
      .. '"errors_read":%d,"errors_write":%d,"errors_timeout":%d}\n',
    summary.requests, summary.duration, summary.requests / (summary.duration / 1e6),
    latency:percentile(50), latency:percentile(99), latency.max,
    e.status, e.connect, e.read, e.write, e.timeout))
end
