"""Closed-loop HTTP throughput with `wrk`: each request creates a contact with an email of its own,
sends a Segment `track` call with a message id of its own, or posts a conversion with a transaction id
of its own."""

from __future__ import annotations

import asyncio
import base64
import json
import math
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from services.bench.servers import BENCH_API_KEY

# wrk runs `request` for every request and `done` once at the end; `done` prints the figures as JSON
# so nothing has to be parsed out of wrk's human-readable summary.
_SCRIPT = """
local prefix = "bench"
local counter = 0
local auth = ""
local kind = "contact"

function init(args)
  prefix = args[1] or prefix
  auth = args[2] or ""
  kind = args[3] or kind
end

function request()
  counter = counter + 1
  if kind == "redirect" then
    local browser = "Mozilla/5.0 (X11; Linux x86_64) Chrome/126.0 Safari/537.36"
    return wrk.format("GET", nil, {["User-Agent"] = browser})
  end
  local body
  if kind == "postback" then
    body = string.format(
      '{"code":"bench","transaction_id":"%s-%d","event":"sale","amount":4999,"currency":"EUR",' ..
      '"customer_id":"%s-%d"}', prefix, counter, prefix, counter % 1000)
  elseif kind == "track" then
    body = string.format(
      '{"type":"track","anonymousId":"%s-%d","messageId":"%s-%d","event":"Pricing Viewed",' ..
      '"properties":{"path":"/pricing","plan":"team"},"context":{"page":{"path":"/pricing"}}}',
      prefix, counter % 1000, prefix, counter)
  else
    body = string.format(
      '{"email":"%s-%d@example.com","first_name":"Ada","source":"bench"}', prefix, counter)
  end
  return wrk.format("POST", nil, {["Content-Type"] = "application/json", ["Authorization"] = auth}, body)
end

function done(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    'WRK_RESULT {"requests":%d,"duration_us":%d,"connect":%d,"read":%d,"write":%d,' ..
    '"status":%d,"timeout":%d,"p50_us":%d,"p99_us":%d,"max_us":%d}\\n',
    summary.requests, summary.duration, e.connect, e.read, e.write, e.status, e.timeout,
    latency:percentile(50), latency:percentile(99), latency.max))
end
"""


@dataclass(frozen=True)
class WrkResult:
    requests: int
    duration_s: float
    non_2xx: int
    socket_errors: int
    p50_ms: float
    p99_ms: float
    max_ms: float

    @property
    def ok_per_s(self) -> float:
        """Successful responses per second: a failed request is not throughput."""
        return (self.requests - self.non_2xx) / self.duration_s if self.duration_s else 0.0


def require_wrk() -> str:
    found = shutil.which("wrk")
    if found is None:
        raise RuntimeError("wrk not found: install the Debian package `wrk` (deploy/bench.sh does)")
    return found


async def run_wrk(
    url: str,
    *,
    duration_s: float,
    connections: int,
    threads: int = 1,
    email_prefix: str,
    body: Literal["contact", "track", "redirect", "postback"] = "contact",
) -> WrkResult:
    """`body`: a contact to create, a track call sent as tracking libraries do (the key as HTTP Basic
    user name), `redirect`: a browser's GET with no key (wrk counts a 302 as a success), or a postback
    crediting the link `bench`. `email_prefix` makes the emails, message ids or transaction ids of one
    run unique."""
    authorization = (
        "Basic " + base64.b64encode(f"{BENCH_API_KEY}:".encode()).decode()
        if body == "track"
        else f"Bearer {BENCH_API_KEY}"
    )
    with tempfile.TemporaryDirectory(prefix="crm-bench-wrk-") as scratch:
        script = Path(scratch) / "create_contact.lua"
        script.write_text(_SCRIPT)
        seconds = max(1, math.ceil(duration_s))
        process = await asyncio.create_subprocess_exec(
            require_wrk(),
            f"-t{threads}",
            f"-c{connections}",
            f"-d{seconds}s",
            "--timeout",
            "10s",
            "-s",
            str(script),
            url,
            "--",
            email_prefix,
            authorization,
            body,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.STDOUT,
        )
        try:
            output, _ = await asyncio.wait_for(process.communicate(), timeout=seconds + 30)
        except BaseException:
            if process.returncode is None:
                process.kill()
                await process.wait()
            raise
    text = output.decode(errors="replace")
    line = next((line for line in text.splitlines() if line.startswith("WRK_RESULT ")), None)
    if process.returncode != 0 or line is None:
        raise RuntimeError(f"wrk failed (exit {process.returncode}):\n{text[-2000:]}")
    raw = json.loads(line.removeprefix("WRK_RESULT "))
    return WrkResult(
        requests=raw["requests"],
        duration_s=raw["duration_us"] / 1e6,
        non_2xx=raw["status"],
        socket_errors=raw["connect"] + raw["read"] + raw["write"] + raw["timeout"],
        p50_ms=raw["p50_us"] / 1000,
        p99_ms=raw["p99_us"] / 1000,
        max_ms=raw["max_us"] / 1000,
    )
