#!/usr/bin/env bash
# Runs loadbench side by side with peer load generators through ../shared/bench-peers
# (M1 non-streaming closed loop, M2 SSE closed loop, M3 open-loop TTFT/ITL fidelity,
# M4 coordinated omission). Each tool gets one pinned core. Output: bench/results/peers.md
#
#   bash bench/peers.sh                                    # loadbench, ref_aiohttp, wrk, wrk2, hey
#   TOOLS=loadbench,ref_aiohttp,wrk,locust bash bench/peers.sh
#   PEERS_SKIP_HEAVY=0 TOOLS=all bash bench/peers.sh       # also GuideLLM, AIPerf, inference-perf (GBs of installs)
set -eu
here="$(cd "$(dirname "$0")" && pwd)"
peers="${PEERS_DIR:-$here/../../shared/bench-peers}"
mkdir -p "$here/results"
export PEERS_SKIP_HEAVY="${PEERS_SKIP_HEAVY:-1}"
export LOADBENCH_CMD="$(command -v loadbench) load {url}/v1 --mode {mode} --rate {rate} --concurrency {concurrency} --duration {duration} {stream_flag} --json-out {json_out} --out {workdir}/lb-runs"
export LOADBENCH_VERSION_CMD="loadbench --version"
tools="${TOOLS:-loadbench,ref_aiohttp,wrk,wrk2,hey}"
args=(--out "$here/results/peers.md")
[ "$tools" = all ] || args+=(--tools "$tools")
bash "$peers/run.sh" "${args[@]}" "$@"
