#!/usr/bin/env bash
# Benchmark: emulator + cloud + local (PostgreSQL) on 127.0.0.1, plus dev mode; prints a table.
# Usage: bench/run.sh [--messages N] [--concurrency C] [--logins N] [--relay-samples N]
#                     [--oidc-samples N] [--oidc-token-requests N] [--oidc-concurrency C]
#                     [--burst N]   (N messages under DingTalk's real 20 calls/s; 0 skips; default 2000, ~2 min)
#                     [--quota N]   (N metered calls left, N + 1 messages: the last waits, then goes out; 0 skips)
#                     [--cluster N] (N messages through 1 cloud + 1 local, then 2 + 2, on PostgreSQL under
#                                    DingTalk's 20 calls/s: accepted/s, delivered/s, peak rate; 0 skips; ~2.5 min)
#                     [--relay-load-secs S]  (wrk on POST /relay/v1/messages, S s at c=16 and c=64; 0 skips)
#                     [--event-load-secs S]  (wrk on POST /dingtalk/events, S s at c=16, alone and during a
#                                             purge of 1,000,000 expired nonces; 0 skips)
#                     [--soak-secs S] [--soak-rate R]  (R messages/s through local → cloud → emulator for S s;
#                                             default 600 s at 100/s; 0 skips)
# Builds the release binaries (cargo run builds `bench`; the others are built first), starting
# PostgreSQL on 127.0.0.1:5432 if it is not running (as .ci/run does).
set -euo pipefail
cd "$(dirname "$0")/.."

if command -v pg_isready >/dev/null 2>&1 && ! pg_isready -h 127.0.0.1 -p 5432 -q; then
  echo "starting PostgreSQL" >&2
  pg_ctlcluster --skip-systemctl-redirect "$(ls /etc/postgresql | head -n 1)" main start
  for _ in $(seq 1 30); do pg_isready -h 127.0.0.1 -p 5432 -q && break; sleep 1; done
fi

# wrk drives the relay accept and event callback loads (--relay-load-secs, --event-load-secs);
# sqlite3 seeds the expired nonces of the purge scenario. Install them if missing (Debian packages).
for tool in wrk sqlite3; do
  if ! command -v "$tool" >/dev/null 2>&1; then
    echo "installing $tool" >&2
    export DEBIAN_FRONTEND=noninteractive
    apt-get install -y -qq "$tool" >/dev/null || { apt-get update -qq && apt-get install -y -qq "$tool" >/dev/null; }
  fi
done

# bench starts the emulator and dingbridge-proc binaries from its own target directory.
cargo build --release -p tests --bins
exec cargo run --release -p tests --bin bench -- "$@"
