#!/bin/sh
# soak.sh N HOGGED: run the whole suite N times in a row (-count=1, as
# make test runs it: -race, four packages at once), then HOGGED times more
# while one busy loop per core keeps the machine loaded, and print one line
# per run and a total. A test that needs an idle or fast machine shows up
# here as a red run; a deadline in a test only catches a hang.
set -u
n=${1:-10}
hogged=${2:-5}
failed=0
total=0
run() {
	label=$1
	total=$((total + 1))
	start=$(date +%s)
	if go test -race -count=1 -p 4 -parallel 8 ./... >"/tmp/soak.$$.log" 2>&1; then
		echo "run $total ($label): ok in $(($(date +%s) - start)) s"
	else
		failed=$((failed + 1))
		kept="${TMPDIR:-/tmp}/soak-run$total.log"
		cp "/tmp/soak.$$.log" "$kept"
		echo "run $total ($label): FAIL in $(($(date +%s) - start)) s: $(grep -E '^--- FAIL' "/tmp/soak.$$.log" | tr '\n' ' ')(output in $kept)"
	fi
}
i=0
while [ $i -lt "$n" ]; do run idle; i=$((i + 1)); done
hogs=""
cores=$(getconf _NPROCESSORS_ONLN 2>/dev/null || echo 2)
c=0
while [ $c -lt "$cores" ]; do
	sh -c 'while :; do :; done' &
	hogs="$hogs $!"
	c=$((c + 1))
done
trap 'kill $hogs 2>/dev/null' EXIT INT TERM
i=0
while [ $i -lt "$hogged" ]; do run "$cores cores busy"; i=$((i + 1)); done
kill $hogs 2>/dev/null
rm -f "/tmp/soak.$$.log"
echo "soak: $((total - failed)) of $total runs green"
[ $failed -eq 0 ]
