#!/usr/bin/python3
"""Checks the benchmark results against issue 5's targets and writes RESULTS.md.

    report.py --dir tests/bench/results --mode full|smoke

Reads what run_all.sh left in --dir (machine.json, load.json, stampede.json,
scale.json, client_benchmark.json), prints one PASS/MISS/FAIL line per
target and writes RESULTS.md beside them. Exit status 1 when a functional
target FAILs; performance targets are PASS or MISS and never fail (see
run_all.sh). Standard library only.
"""
import argparse
import json
import os
import sys

RSS_LIMIT_MB = 150.0
THROUGHPUT_RATIO_GOAL = 0.95
P99_HALF_PEAK_GOAL_US = 1000.0
# bench_smoke fails below this GetToken/Check throughput ratio: far below
# the 0.95 goal, so that only a gross regression (GetToken several times
# slower than Check) trips it. Smoke rounds are 300 ms on a shared machine:
# 0.24 was measured once with a stress run beside it, so the floor is lower.
SMOKE_RATIO_FLOOR = 0.15


def load(directory, name):
    path = os.path.join(directory, name)
    try:
        with open(path) as f:
            return json.load(f)
    except (OSError, ValueError):
        return None


class Targets:
    def __init__(self):
        self.rows = []  # (target, measured, goal, verdict)
        self.failed = False

    def functional(self, target, ok, measured, goal):
        verdict = "PASS" if ok else "FAIL"
        self.failed |= not ok
        self.rows.append((target, measured, goal, verdict))

    def performance(self, target, ok, measured, goal, note=""):
        verdict = ("PASS" if ok else "MISS") + (f" ({note})" if note else "")
        self.rows.append((target, measured, goal, verdict))


def fmt(v, digits=0):
    return f"{v:,.{digits}f}"


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--dir", required=True)
    parser.add_argument("--mode", choices=["full", "smoke"], default="full")
    args = parser.parse_args()
    d = args.dir
    smoke = args.mode == "smoke"

    machine = load(d, "machine.json") or {}
    lg = load(d, "load.json")
    lp = load(d, "load_pinned.json")
    st = load(d, "stampede.json")
    sc = load(d, "scale.json")
    ho = load(d, "hostile.json")
    cb = load(d, "client_benchmark.json")
    t = Targets()

    # --- Load: GetToken vs Check.
    if lg is None:
        t.functional("load generator ran", False, "no load.json", "results")
    else:
        errors = sum(l["get_token"]["errors"] + l["check"]["errors"]
                     for l in lg["levels"])
        if "paced" in lg:
            errors += lg["paced"]["get_token"]["errors"] + lg["paced"]["check"]["errors"]
        t.functional("load: every call succeeded", errors == 0,
                     f"{errors} failed calls", "0")
        peak = lg["peak"]
        t.performance(
            "cached GetToken throughput >= 0.95 x Health/Check (peak vs peak)",
            peak["throughput_ratio"] >= THROUGHPUT_RATIO_GOAL,
            f'{peak["throughput_ratio"]:.3f} ({fmt(peak["get_token_throughput"])}'
            f' vs {fmt(peak["check_throughput"])} calls/s)',
            ">= 0.95", "noisy; not enforced" if smoke else "")
        # The smoke guard: loose, so that only a real regression (GetToken
        # at half of Check or worse) fails CI on a noisy machine.
        t.functional(f"smoke guard: GetToken >= {SMOKE_RATIO_FLOOR} x Check at peak",
                     peak["throughput_ratio"] >= SMOKE_RATIO_FLOOR,
                     f'{peak["throughput_ratio"]:.3f}', f">= {SMOKE_RATIO_FLOOR}")
        worst = min(lg["levels"], key=lambda l: l["throughput_ratio"])
        t.performance("GetToken >= 0.95 x Check at every level",
                      worst["throughput_ratio"] >= THROUGHPUT_RATIO_GOAL,
                      f'lowest {worst["throughput_ratio"]:.3f} at '
                      f'{worst["concurrency"]} in flight', ">= 0.95")
        one = [l for l in lg["levels"] if l["concurrency"] == 1]
        if one and "p50_ratio" in one[0]:
            t.performance("GetToken p50 <= 1.05 x Check at 1 in flight",
                          one[0]["p50_ratio"] <= 1.05,
                          f'{one[0]["p50_ratio"]:.3f} '
                          f'({one[0]["get_token"]["p50_us"]:.0f} vs '
                          f'{one[0]["check"]["p50_us"]:.0f} µs)', "<= 1.05")
        with_noop = [l for l in lg["levels"] if "noop" in l]
        if with_noop:
            w = min(with_noop, key=lambda l: l["check_vs_noop_ratio"])
            t.performance("broker Check >= 0.95 x bare no-op server at every level",
                          w["check_vs_noop_ratio"] >= THROUGHPUT_RATIO_GOAL,
                          f'lowest {w["check_vs_noop_ratio"]:.3f} at '
                          f'{w["concurrency"]} in flight', ">= 0.95")
        if lp is not None:
            one = [l for l in lp["levels"] if l["concurrency"] == 1]
            if one:
                t.performance("pinned (taskset): GetToken p50 <= 1.05 x Check at 1 in flight",
                              one[0]["p50_ratio"] <= 1.05,
                              f'{one[0]["p50_ratio"]:.3f} '
                              f'({one[0]["get_token"]["p50_us"]:.0f} vs '
                              f'{one[0]["check"]["p50_us"]:.0f} µs)', "<= 1.05")
        if "paced" in lg:
            p = lg["paced"]
            p99 = p["get_token"]["p99_us"]
            t.performance(
                "p99 GetToken <= 1 ms at half of peak throughput (open loop)",
                p99 <= P99_HALF_PEAK_GOAL_US,
                f'{p99:,.0f} µs at {fmt(p["rate"])} calls/s '
                f'(Check: {p["check"]["p99_us"]:,.0f} µs)',
                "<= 1000 µs", "noisy; not enforced" if smoke else "")

    # --- Stampede.
    if st is None:
        t.functional("stampede: exactly 1 upstream request", False,
                     "no stampede.json", "1")
    else:
        ups = [r["upstream_requests"] for r in st["rounds"]]
        toks = [r["distinct_tokens"] for r in st["rounds"]]
        fails = sum(r["failures"] for r in st["rounds"])
        ok = all(u == 1 for u in ups) and all(k == 1 for k in toks) and fails == 0
        t.functional(
            f'stampede: {st["callers"]} cold callers -> exactly 1 upstream request',
            ok, f"upstream per round {ups}, tokens per round {toks}, "
                f"{fails} failed callers", "1 per round")

    # --- Scale.
    if sc is None:
        t.functional("scale benchmark ran", False, "no scale.json", "results")
    else:
        n = sc["tenants"]
        t.functional(f"scale: all {n} tenants warmed up, broker ran to the end",
                     sc["warmed"] and not sc["broker_exited_early"],
                     f'{sc["warmed_tenants"]} tenants in {sc["warmup_s"]:.1f} s',
                     "all")
        t.functional("steady state: zero duplicate or failed upstream requests",
                     sc["duplicates"] == 0 and sc["failed"] == 0,
                     f'{sc["duplicates"]} duplicates, {sc["failed"]} failed',
                     "0")
        ratio = sc["renewal_rate_ratio"]
        t.performance(
            "steady state: upstream requests = renewals (1 per entry per period)",
            0.9 <= ratio <= 1.1 and sc["late"] == 0,
            f'rate/theory {ratio:.3f}, {sc["late"]} late renewals',
            "0.9..1.1, 0 late")
        t.functional("upstream in-flight bound never exceeded",
                     sc["max_in_flight"] <= sc["max_concurrent_requests"],
                     f'max {sc["max_in_flight"]}',
                     f'<= {sc["max_concurrent_requests"]}')
        t.performance(f"peak RSS <= 150 MB at {n} tenants",
                      sc["peak_rss_mb"] <= RSS_LIMIT_MB,
                      f'{sc["peak_rss_mb"]:.1f} MB', "<= 150 MB",
                      "smoke: 10 000 tenants only in the full run" if smoke else "")

    # --- Hostile load (issue 11): a legitimate caller while peers flood.
    if ho is None:
        t.functional("hostile load benchmark ran", False, "no hostile.json",
                     "results")
    else:
        limit = ho["memory_limit_mib"]
        for f in ho["floods"]:
            b, a = f["baseline"], f["attack"]
            t.functional(f'hostile {f["flood"]}: no failed legitimate call',
                         b["errors"] == 0 and a["errors"] == 0
                         and f["fresh_caller_ok"],
                         f'{a["errors"]} failed of {a["calls"] + a["errors"]} '
                         f'under attack, a new caller '
                         f'{"got" if f["fresh_caller_ok"] else "did NOT get"} a token',
                         "0 failed")
            t.performance(f'hostile {f["flood"]}: p99 under attack <= 2x without',
                          f["p99_ratio"] <= 2.0,
                          f'{a["p99_us"]:.0f} vs {b["p99_us"]:.0f} µs '
                          f'({f["p99_ratio"]:.2f}x)', "<= 2x")
        t.functional(f"hostile load: broker peak RSS below {limit} MiB",
                     ho["peak_rss_kb"] < limit * 1024,
                     f'{ho["peak_rss_kb"] / 1024:.1f} MiB', f"< {limit} MiB")

    # --- Client library (issue 13): the cache hit, one and two threads.
    if cb is not None:
        medians = {b.get("run_name", b["name"]): b for b in cb.get("benchmarks", [])
                   if b.get("aggregate_name") == "median"}
        if not medians:  # a run without repetitions: the runs themselves
            medians = {b["name"]: b for b in cb.get("benchmarks", [])
                       if b.get("run_type", "iteration") == "iteration"}
        one = medians.get("BM_CacheHitGetToken/threads:1")
        two = medians.get("BM_CacheHitGetToken/threads:2")
        if one is not None:
            t.performance("client hit: BM_CacheHitGetToken, 1 thread <= 100 ns",
                          one["cpu_time"] <= 100,
                          f'{one["cpu_time"]:.1f} ns (median)', "<= 100 ns")
        if one is not None and two is not None and "thread_ns" in two:
            ratio = two["thread_ns"] / one["real_time"]
            t.performance("client hit, 2 threads on one entry: each call <= 1.5 x "
                          "one thread's (no contention collapse)",
                          ratio <= 1.5,
                          f'{two["thread_ns"]:.1f} vs {one["real_time"]:.1f} ns '
                          f'({ratio:.2f}x)', "<= 1.5x")

    # --- Console.
    width = max(len(r[0]) for r in t.rows)
    for target, measured, goal, verdict in t.rows:
        print(f"{verdict.split(' ')[0]:4}  {target:<{width}}  {measured}")

    # --- RESULTS.md.
    md = []
    md.append("# Benchmark results\n")
    md.append(f'Mode: **{args.mode}**. Machine: {machine.get("nproc", "?")} cores '
              f'({machine.get("cpu", "?")}), {machine.get("memory_mb", "?")} MB, '
              f'Linux {machine.get("kernel", "?")}, load average at start '
              f'{machine.get("loadavg_at_start", "?")}; {machine.get("date", "?")}, '
              f'commit {machine.get("commit", "?")}'
              + (" plus uncommitted changes to server/client/proto"
                 if machine.get("uncommitted_changes") else "")
              + ". Shared with other work: "
              "absolute numbers are noisy, ratios less so.\n")
    md.append("Produced by `tests/bench/run_all.sh`"
              + (" --smoke" if smoke else "") + "; see `tests/bench/README.md`.\n")
    md.append("## Targets\n")
    md.append("| target | measured | goal | result |")
    md.append("|---|---|---|---|")
    for target, measured, goal, verdict in t.rows:
        md.append(f"| {target} | {measured} | {goal} | {verdict} |")
    md.append("")

    if lg is not None:
        md.append("## Cached GetToken vs grpc.health.v1.Health/Check\n")
        md.append(f'Closed loop, {lg["channels"]} connections, {lg["rounds"]} '
                  f'alternating rounds of {lg["round_seconds"]:g} s per workload '
                  "and level; latency in µs; server CPU = the broker's utime+stime "
                  "per call.\n")
        def load_table(levels):
            md.append("| in flight | GetToken calls/s | Check calls/s | bare no-op calls/s | "
                      "G/C | C/bare | GetToken p50 / p90 / p99 / p99.9 | "
                      "Check p50 / p90 / p99 / p99.9 | bare p50 / p99 | p50 ratio G/C | "
                      "p99 ratio G/C | server CPU µs/call G / C |")
            md.append("|---:|---:|---:|---:|---:|---:|---|---|---|---:|---:|---|")
            pct = lambda s: (f'{s["p50_us"]:.0f} / {s["p90_us"]:.0f} / '
                             f'{s["p99_us"]:.0f} / {s["p999_us"]:.0f}')
            for l in levels:
                g, c, n = l["get_token"], l["check"], l.get("noop")
                cpu = (f'{l["get_token_server_cpu_us"]:.1f} / {l["check_server_cpu_us"]:.1f}'
                       if l["get_token_server_cpu_us"] >= 0 else "-")
                bare = fmt(n["throughput"]) if n else "-"
                c_bare = f'{l["check_vs_noop_ratio"]:.3f}' if n else "-"
                bare_pct = f'{n["p50_us"]:.0f} / {n["p99_us"]:.0f}' if n else "-"
                md.append(f'| {l["concurrency"]} | {fmt(g["throughput"])} | '
                          f'{fmt(c["throughput"])} | {bare} | '
                          f'{l["throughput_ratio"]:.3f} | {c_bare} | {pct(g)} | '
                          f'{pct(c)} | {bare_pct} | {l.get("p50_ratio", 0):.3f} | '
                          f'{l["p99_ratio"]:.3f} | {cpu} |')
        load_table(lg["levels"])
        peak = lg["peak"]
        md.append("")
        md.append(f'Peak: GetToken {fmt(peak["get_token_throughput"])}/s at '
                  f'{peak["get_token_concurrency"]} in flight, Check '
                  f'{fmt(peak["check_throughput"])}/s at {peak["check_concurrency"]}; '
                  f'**throughput ratio {peak["throughput_ratio"]:.3f}**, p99 ratio at '
                  f'GetToken\'s peak level **{peak["p99_ratio"]:.3f}** '
                  f'({peak["get_token_p99_us"]:.0f} vs {peak["check_p99_us"]:.0f} µs).\n')
        if "paced" in lg:
            p = lg["paced"]
            md.append(f'Open loop at {fmt(p["rate"])} calls/s '
                      f'({p["fraction"] * 100:.0f} % of GetToken\'s peak), latency '
                      "from when each call was due (µs):\n")
            md.append("| workload | calls/s | p50 | p90 | p99 | p99.9 | max | "
                      "server CPU µs/call |")
            md.append("|---|---:|---:|---:|---:|---:|---:|---:|")
            for name, key in (("GetToken", "get_token"), ("Check", "check")):
                s = p[key]
                md.append(f'| {name} | {fmt(s["throughput"])} | {s["p50_us"]:.0f} | '
                          f'{s["p90_us"]:.0f} | {s["p99_us"]:.0f} | {s["p999_us"]:.0f} | '
                          f'{s["max_us"]:.0f} | {p[key + "_server_cpu_us"]:.1f} |')
            md.append(f'\nCalls skipped for too many outstanding: {p["skipped"]}.\n')
        md.append("![latency and throughput vs concurrency](latency.png)\n")
        if lp is not None:
            md.append("### Pinned: servers on core 0, load generator on core 1\n")
            md.append("The same workloads at low concurrency with `taskset`, so "
                      "that client and server do not share a core (1 connection).\n")
            load_table(lp["levels"])
            md.append("")

    if st is not None:
        md.append("## Stampede\n")
        md.append(f'{st["callers"]} concurrent callers on one cold entry over '
                  f'{st["channels"]} connections (real broker, Treezor double, '
                  "real time). *race*: calls started as fast as one thread can; "
                  "*gated*: the one fetch is held until every call has reached "
                  "the broker, time measured from its release.\n")
        md.append("| round | upstream requests | distinct tokens | failed | "
                  "start spread ms | all answered ms | p50 ms | p99 ms |")
        md.append("|---|---:|---:|---:|---:|---:|---:|---:|")
        for r in st["rounds"]:
            md.append(f'| {r["kind"]} | {r["upstream_requests"]} | '
                      f'{r["distinct_tokens"]} | {r["failures"]} | '
                      f'{r["start_spread_ms"]:.1f} | {r["all_done_ms"]:.1f} | '
                      f'{r["latency"]["p50_us"] / 1000:.1f} | '
                      f'{r["latency"]["p99_us"] / 1000:.1f} |')
        md.append("")

    if sc is not None:
        md.append("## Scale\n")
        md.append(f'The broker binary (own process) with **{sc["tenants"]} tenants**, '
                  f'token lifetime {sc["token_lifetime_s"]:g} s (renewal period '
                  f'{sc["renewal_period_s"]:g} s), upstream bound '
                  f'{sc["max_concurrent_requests"]}, watched {sc["watch_s"]:g} s '
                  "after warm-up.\n")
        rows = [
            ("warm-up (spawn → every tenant has a token)", f'{sc["warmup_s"]:.2f} s'),
            ("peak RSS (VmHWM)", f'{sc["peak_rss_mb"]:.1f} MB'),
            ("RSS after warm-up / at end",
             f'{sc["rss_after_warmup_mb"]:.1f} / {sc["rss_at_end_mb"]:.1f} MB'),
            ("broker threads", f'{sc["broker_threads"]}'),
            ("broker open file descriptors, max",
             f'{sc.get("max_open_fds", "not measured")}'),
            ("broker CPU per warm-up fetch / per renewal",
             f'{sc["cpu_per_warmup_fetch_ms"]:.2f} / {sc["cpu_per_renewal_ms"]:.2f} ms'),
            ("renewals in the steady window / theory",
             f'{sc["steady_renewals"]} / {sc["expected_renewals"]:.0f} '
             f'({sc["steady_window_s"]:.0f} s)'),
            ("renewal rate per entry / theory", f'{sc["renewal_rate_ratio"]:.3f}'),
            ("renewal interval mean / sd (× lifetime)",
             f'{sc["interval_mean_lifetimes"]:.4f} / {sc["interval_sd_lifetimes"]:.4f} '
             "(jitter alone: sd 0.0408)"),
            ("renewals per tenant in the window (min / max)",
             f'{sc["renewals_per_tenant_min"]} / {sc["renewals_per_tenant_max"]}'),
            ("duplicates / late / failed / never renewed",
             f'{sc["duplicates"]} / {sc["late"]} / {sc["failed"]} / {sc["never_renewed"]}'),
            ("upstream in flight, max (bound)",
             f'{sc["max_in_flight"]} ({sc["max_concurrent_requests"]})'),
            ("steady requests/s: theory / mean / max / max÷mean",
             f'{sc["theory_rate_per_s"]:.1f} / {sc["steady_rate_mean"]:.1f} / '
             f'{sc["steady_rate_max"]:.0f} / '
             f'{(sc["steady_rate_max"] / sc["steady_rate_mean"]) if sc["steady_rate_mean"] else 0:.2f}'),
            ("broker log warnings / errors",
             f'{sc["log_warnings"]} / {sc["log_errors"]}'),
        ]
        md.append("| measure | value |")
        md.append("|---|---|")
        md.extend(f"| {k} | {v} |" for k, v in rows)
        md.append("\n![upstream requests per second](renewals.png)\n")

    if ho is not None:
        md.append("## Hostile load\n")
        md.append(f'The broker binary with its default limits; a legitimate caller '
                  f'(one connection, one call in flight) for {ho["phase_seconds"]:g} s '
                  "without and then with each flood, side by side; RSS sampled "
                  f'every 20 ms against the chart\'s {ho["memory_limit_mib"]} MiB '
                  f'limit; peak over the whole run {ho["peak_rss_kb"] / 1024:.1f} MiB. '
                  f'Floods: {ho["connections"]} connections, {ho["watch_streams"]} '
                  f'WatchToken streams over {ho["watch_channels"]} connections, '
                  f'{ho["health_streams"]} Health.Watch streams, {ho["scope_sets"]} '
                  "scope sets.\n")
        md.append("| flood | calls / failed | p50 µs | p99 µs | under attack: calls / failed "
                  "| p50 µs | p99 µs | p99 ratio | RSS MiB without / with | "
                  "Treezor requests | how the broker answered the flood |")
        md.append("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|")
        for f in ho["floods"]:
            b, a = f["baseline"], f["attack"]
            how = ", ".join(f"{k} {v}" for k, v in f["outcomes"].items())
            md.append(f'| {f["flood"]} | {b["calls"]} / {b["errors"]} | '
                      f'{b["p50_us"]:.0f} | {b["p99_us"]:.0f} | '
                      f'{a["calls"]} / {a["errors"]} | {a["p50_us"]:.0f} | '
                      f'{a["p99_us"]:.0f} | {f["p99_ratio"]:.2f} | '
                      f'{f["baseline_rss_kb"] / 1024:.1f} / {f["attack_rss_kb"] / 1024:.1f} | '
                      f'{f["treezor_requests"]} | {how} |')
        md.append("\n![hostile load](hostile.png)\n")

    md.append("## Client library: cache hit vs RPC\n")
    if cb is None:
        md.append("`client_benchmark` was not built or did not run.\n")
    else:
        md.append("Google Benchmark (`client_benchmark`), from the client library.\n")
        md.append("`thread_ns`: each thread's own wall time per call (with two "
                  "threads, contention raises it; a busy machine raises real "
                  "time alone).\n")
        md.append("| benchmark | real time | CPU time | thread_ns | iterations |")
        md.append("|---|---:|---:|---:|---:|")
        for b in cb.get("benchmarks", []):
            if b.get("aggregate_name") in ("stddev", "cv"):
                continue
            unit = b.get("time_unit", "ns")
            thread_ns = f'{b["thread_ns"]:,.1f} ns' if "thread_ns" in b else "-"
            md.append(f'| {b["name"]} | {b.get("real_time", 0):,.1f} {unit} | '
                      f'{b.get("cpu_time", 0):,.1f} {unit} | {thread_ns} | '
                      f'{b.get("iterations", "")} |')
        md.append("")

    with open(os.path.join(d, "RESULTS.md"), "w") as f:
        f.write("\n".join(md) + "\n")
    print(f"\nwrote {os.path.join(d, 'RESULTS.md')}")
    if t.failed:
        print("FAIL: a functional target failed")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
