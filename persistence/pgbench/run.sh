#!/bin/sh
# run.sh measures the raw Postgres ceiling of checkoutd's transactions with
# pgbench (issue #7): `make pgbench`. See README.md.
#
# It uses the server of $DATABASE_URL (default: the machine's Postgres at
# 127.0.0.1:5432), in a database of its own, checkoutd_pgbench, which it
# drops and creates, prepares (checkoutd's migrations, then setup.sql) and
# drops again at the end. Each script runs PGBENCH_TIME seconds (default 20).
# After each run it checks in SQL that every transaction pgbench counted
# wrote exactly its rows (payments, sessions, events, webhook deliveries;
# sessions and idempotency keys for the creates), and fails if not.
#
# PGBENCH_SCRIPTS (default: all) lists the scripts to run, by name;
# PGBENCH_KEEP=1 keeps the database at the end, to look at what was written.
set -eu

here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
T=${PGBENCH_TIME:-20}
base=${DATABASE_URL:-postgres://postgres@127.0.0.1:5432/postgres?sslmode=disable}
db=checkoutd_pgbench
# The same URL, naming our database instead.
url=$(printf '%s\n' "$base" | sed -E 's#^(postgres(ql)?://[^/?]*)(/[^?]*)?#\1/'"$db"'#')

scripts=${PGBENCH_SCRIPTS:-"settle1 settle1cte settle64 settle64cte settle64array settle64array-gen create1 create1nokey create64"}

# The accounts and the transaction hash are fixed: their values cost
# Postgres nothing that a real one would not.
account=GBRL2NVZVZTXM56IFRXJVYEGWMHS2IOUCVXCSTAQHETQ2FWTUZSSLU76
from=GDOHZKU2UNUIBJZPIFCOFOHPRAPHYYSJTCV3GXM5LVXZRQKXFZJGLBNN
txhash=0000000000000000000000000000000000000000000000000000000000003039

tmp=$(mktemp -d)
sampler=
cleanup() {
	if [ -n "$sampler" ]; then
		rm -f "$tmp/sampling"
		wait "$sampler" 2>/dev/null || true
	fi
	if [ -z "${PGBENCH_KEEP:-}" ]; then
		psql "$base" -qX -c "DROP DATABASE IF EXISTS $db WITH (FORCE)" >/dev/null 2>&1 || true
	fi
	rm -rf "$tmp"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

q() { psql "$url" -qAtX -v ON_ERROR_STOP=1 "$@"; }

# The scripts must say what persistence/batch.go says today.
"$here/gen.sh" "$tmp"
for f in "$tmp"/*.sql; do
	if ! cmp -s "$f" "$here/$(basename "$f")"; then
		echo "pgbench: $(basename "$f") differs from what gen.sh writes from persistence/batch.go; run persistence/pgbench/gen.sh" >&2
		exit 1
	fi
done
rm -f "$tmp"/*.sql

psql "$base" -qX -v ON_ERROR_STOP=1 -c "SET client_min_messages = warning" -c "DROP DATABASE IF EXISTS $db WITH (FORCE)" -c "CREATE DATABASE $db"
(cd "$root" && ${GO:-go} run ./cmd/checkoutd migrate --database-url "$url") >/dev/null
payload=$(cat "$here/payload.json")
q -v account="$account" -v payload="$payload" -f "$here/setup.sql"
# psql interpolates variables only in what it reads, not in -c.
payload1=$(echo "SELECT ARRAY[:'p']::text" | q -v p="$payload")
payload64=$(echo "SELECT array_fill(:'p'::text, ARRAY[64])::text" | q -v p="$payload")
keyhash=$(q -c "SELECT sha256('sk_pgbench')::text")
reqhash=$(q -c "SELECT sha256('POST /v1/checkout/sessions')::text")
# The stored response of a create is the session object.
respbody=$(echo "SELECT convert_to((:'p'::jsonb -> 'session')::text, 'UTF8')::text" | q -v p="$payload")
metadata='{"kind":"exact","loadgen_run":"pgbench"}'

# counts prints what the scripts write, as one line.
counts() {
	q -F ' ' -c "SELECT (SELECT count(*) FROM payments), (SELECT count(*) FROM events),
		(SELECT count(*) FROM webhook_deliveries),
		(SELECT coalesce(sum(version - 1), 0) FROM sessions WHERE memo LIKE 'M%'),
		(SELECT coalesce(sum(amount_received), 0) FROM sessions WHERE memo LIKE 'M%'),
		(SELECT count(*) FROM sessions WHERE memo LIKE 'C%'),
		(SELECT count(*) FROM idempotency_keys WHERE response_status = 201)"
}

# sample records, every 0.2 s while $tmp/sampling exists, the user and
# system CPU ticks of the server processes serving pgbench (found by their
# application_name). The last 0.2 s of each run is missed, about 1% of 20 s.
sample() {
	pids=
	while [ -f "$tmp/sampling" ]; do
		if [ "$(echo $pids | wc -w)" -lt "$clients" ]; then
			pids=$(q -c "SELECT pid FROM pg_stat_activity WHERE datname = '$db' AND application_name = 'pgbench'")
		fi
		for p in $pids; do
			awk '{ sub(/.*\) /, ""); print $12, $13 }' "/proc/$p/stat" >"$tmp/cpu.$p" 2>/dev/null || true
		done
		sleep 0.2
	done
}

printf '%s\n' "pgbench ceiling: $(q -c 'SELECT version()' | cut -d' ' -f1-2), fsync=$(q -c 'SHOW fsync'), synchronous_commit=$(q -c 'SHOW synchronous_commit'), $(nproc) cores, ${T}s a script, pgbench -n -M prepared"
printf '%-18s %7s %8s %9s %10s %8s %12s  %s\n' script clients tps rows/s 'pg µs/row' '(sys)' 'load avg' written
fail=0
for s in $scripts; do
	case $s in
	settle1 | settle1cte) clients=4 rows=1 kind=settle ;;
	settle64 | settle64cte | settle64array) clients=2 rows=64 kind=settle ;;
	settle64array-gen) clients=2 rows=64 kind=none ;;
	create1) clients=4 rows=1 kind=create ;;
	create1nokey) clients=4 rows=1 kind=createnokey ;;
	create64) clients=2 rows=64 kind=create ;;
	*) echo "pgbench: unknown script $s" >&2; exit 2 ;;
	esac
	# Every session back at version 1, as the scripts' counters assume,
	# and the dead rows of the last run gone (autovacuum may be off).
	q -c "UPDATE sessions SET amount_received = 0, payment_status = 'unpaid', version = 1
		WHERE memo LIKE 'M%' AND version <> 1" -c 'VACUUM ANALYZE' >/dev/null
	before=$(counts)
	rm -f "$tmp"/cpu.*
	: >"$tmp/sampling"
	sample &
	sampler=$!
	load0=$(cut -d' ' -f1 /proc/loadavg)
	status=0
	pgbench "$url" -n -M prepared -c "$clients" -j "$clients" -T "$T" \
		-D nclients="$clients" -D n=0 -D account="$account" -D from="$from" -D txhash="$txhash" \
		-D payload="$payload" -D payload1="$payload1" -D payload64="$payload64" \
		-D keyhash="$keyhash" -D reqhash="$reqhash" -D respbody="$respbody" -D metadata="$metadata" \
		-f "$here/$s.sql" >"$tmp/out" 2>&1 || status=$?
	load1=$(cut -d' ' -f1 /proc/loadavg)
	rm -f "$tmp/sampling"
	wait "$sampler" || true
	sampler=
	after=$(counts)
	if [ "$status" -ne 0 ] || grep -q 'aborted' "$tmp/out"; then
		echo "pgbench: $s failed:" >&2
		cat "$tmp/out" >&2
		exit 1
	fi
	tps=$(sed -n 's/^tps = \([0-9.]*\) (without initial connection time)$/\1/p' "$tmp/out")
	txns=$(sed -n 's/^number of transactions actually processed: \([0-9]*\).*/\1/p' "$tmp/out")
	ticks=$(cat "$tmp"/cpu.* 2>/dev/null | awk '{ u += $1; s += $2 } END { print u + s }')
	sys=$(cat "$tmp"/cpu.* 2>/dev/null | awk '{ s += $2 } END { print s + 0 }')
	want=$((txns * rows))
	# What each kind must have written: payments, events, deliveries,
	# session versions, amounts received, created sessions, stored responses.
	case $kind in
	settle) expect="$want $want $want $want $want 0 0" ;;
	create) expect="0 0 0 0 0 $want $want" ;;
	createnokey) expect="0 0 0 0 0 $want 0" ;;
	none) expect="0 0 0 0 0 0 0" ;;
	esac
	got=$(printf '%s\n%s\n' "$before" "$after" | awk 'NR == 1 { split($0, b) } NR == 2 { for (i = 1; i <= NF; i++) printf "%s%d", (i > 1 ? " " : ""), $i - b[i] }')
	if [ "$got" = "$expect" ]; then
		check="ok ($want rows)"
	else
		check="WRONG: wrote $got, want $expect (payments events deliveries versions received creates responses)"
		fail=1
	fi
	awk -v s="$s" -v c="$clients" -v tps="$tps" -v rows="$rows" -v ticks="$ticks" -v sys="$sys" -v want="$want" \
		-v l0="$load0" -v l1="$load1" -v check="$check" 'BEGIN {
		us = sprintf("%.0f", ticks * 10000 / want)
		ss = sprintf("%.0f", sys * 10000 / want)
		printf "%-18s %7d %8.1f %9.0f %10s %8s %12s  %s\n", s, c, tps, tps * rows, us, ss, l0 " → " l1, check
	}'
done
exit "$fail"
