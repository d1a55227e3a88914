#!/usr/bin/env bash
# Benchmark: emulator + cloud + local (PostgreSQL) on 127.0.0.1, plus dev mode; prints a table.
# Usage: bench/run.sh [--messages N] [--concurrency C] [--logins N] [--relay-samples N]
#                     [--oidc-samples N] [--oidc-token-requests N] [--oidc-concurrency C]
#                     [--burst N]   (N messages under DingTalk's real 20 calls/s; 0 skips; default 2000, ~2 min)
#                     [--relay-load-secs S]  (wrk on POST /relay/v1/messages, S s at c=16 and c=64; 0 skips)
# Builds the release binaries (cargo run builds `bench`; the others are built first), starting
# PostgreSQL on 127.0.0.1:5432 if it is not running (as .ci/run does).
set -euo pipefail
cd "$(dirname "$0")/.."

if command -v pg_isready >/dev/null 2>&1 && ! pg_isready -h 127.0.0.1 -p 5432 -q; then
  echo "starting PostgreSQL" >&2
  pg_ctlcluster --skip-systemctl-redirect "$(ls /etc/postgresql | head -n 1)" main start
  for _ in $(seq 1 30); do pg_isready -h 127.0.0.1 -p 5432 -q && break; sleep 1; done
fi

# wrk drives the relay accept load (--relay-load-secs): install it if missing (Debian package).
if ! command -v wrk >/dev/null 2>&1; then
  echo "installing wrk" >&2
  export DEBIAN_FRONTEND=noninteractive
  apt-get install -y -qq wrk >/dev/null || { apt-get update -qq && apt-get install -y -qq wrk >/dev/null; }
fi

# bench starts the emulator and dingbridge-proc binaries from its own target directory.
cargo build --release -p tests --bins
exec cargo run --release -p tests --bin bench -- "$@"
