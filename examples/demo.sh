#!/usr/bin/env bash
# The tatzelwurm demo: installs the Python package into a venv the way a user does
# (`pip install .`, kept in target/demo-venv for the next run), starts a coordinator and two
# workers from that venv on loopback in a temporary directory, submits tasks from Python
# (examples/demo.py), then drives the same coordinator with the command line. Everything it
# starts is stopped when it ends, however it ends.
set -euo pipefail
cd "$(dirname "$0")/.."

venv="$PWD/target/demo-venv"
[ -x "$venv/bin/python" ] || python3 -m venv "$venv"
echo "installing the package into $venv (the first build compiles for a few minutes)"
MATURIN_NO_INSTALL_RUST=1 "$venv/bin/pip" install --quiet .
bin="$venv/bin"
work="$(mktemp -d)"
pids=()
cleanup() {
  for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
  wait 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT

say() { printf '\n\033[1m== %s\033[0m\n' "$*"; }

say "starting the coordinator (database in $work/db)"
"$bin/tatzelwurm" --bind 127.0.0.1:0 --db "$work/db" >"$work/coordinator.out" 2>"$work/coordinator.log" &
pids+=($!)
for _ in $(seq 100); do
  grep -q '^listening on ' "$work/coordinator.out" 2>/dev/null && break
  sleep 0.1
done
addr="$(sed -n 's/^listening on //p' "$work/coordinator.out")"
[ -n "$addr" ] || { echo "the coordinator did not start:"; cat "$work/coordinator.log"; exit 1; }
export TATZELWURM_COORDINATOR="$addr"
echo "coordinator at $addr"

say "starting two workers with two slots each (their slots run the venv's python)"
"$bin/workwurm" --slots 2 --name worker-a --path examples 2>"$work/worker-a.log" &
pids+=($!)
"$bin/workwurm" --slots 2 --name worker-b --path examples 2>"$work/worker-b.log" &
pids+=($!)
for _ in $(seq 100); do
  [ "$("$bin/actionwurm" worker list --json | grep -c '"name"')" -ge 2 ] && break
  sleep 0.1
done
"$bin/actionwurm" worker list

say "the Python client (examples/demo.py)"
"$bin/python" examples/demo.py

say "the command line: adding tasks (created, not yet played)"
"$bin/actionwurm" task add tasks:word_count --args '["the quick brown fox jumps over the lazy dog and the cat"]'
"$bin/actionwurm" task add examples/tasks.py:primes --args '[60]'
seq 1 12 | sed 's/.*/[&]/' >"$work/squares.jsonl"
"$bin/actionwurm" task add tasks:square --args-file "$work/squares.jsonl" | tr '\n' ' '; echo
"$bin/actionwurm" task add tasks:sleep --args '[1]'
"$bin/actionwurm" task add tasks:fail --args '["this task fails on purpose"]'
"$bin/actionwurm" task list

say "playing every created task and waiting for them"
"$bin/actionwurm" task play -a
"$bin/actionwurm" task wait -a --timeout 60 || echo "(one task failed on purpose, so wait exits non-zero)"

say "results"
"$bin/actionwurm" task list
failed="$("$bin/actionwurm" task list --state failed --json | sed -n 's/^ *"id": \([0-9]*\).*/\1/p' | tail -n 1)"
say "the failed task, with its traceback"
"$bin/actionwurm" task show "$failed"

say "workers after the run"
"$bin/actionwurm" worker list
