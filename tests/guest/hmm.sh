#!/bin/sh
# The kernel's own HMM test suite under the tracer: this kernel's lib/test_hmm.c as a module and
# its selftest hmm-tests (both built by xtask/src/vm/hmm.rs; adapted where the kernel has no
# CONFIG_DEVICE_PRIVATE) run under `check --ktap`. Passes when check exits 0, the tracer's count
# of dmirror_interval_invalidate calls equals ftrace's function tracer's count over the same
# window, and the tracer saw MIGRATE range starts (the coherent devices' migrations; its metrics,
# read by the traced command itself once the tests are done, count range starts by event).
BIN=/usr/local/bin/mmnotif-trace
OUT=/tmp/traces
RESULTS=${RESULTS:-/tmp/results}
TRACING=/sys/kernel/tracing
mkdir -p "$OUT"

result() { echo "MMNOTIF-TEST: $*" | tee -a "$RESULTS"; }
. "$(dirname "$0")/misses.sh"

if [ -n "$HMM_UNSUPPORTED" ]; then
	result "SKIP hmm-tests ($HMM_UNSUPPORTED)"
	exit 0
fi
# The subset the devices support (docs/vm-testbed.md says why the rest is left out). Devices 0-1
# have no device memory without CONFIG_DEVICE_PRIVATE: they mirror. Devices 2-3 are coherent
# devices on RAM the boot reserved (memmap=, spm_addr_dev*): they migrate.
TESTS="
hmm.hmm_device_private.open_close
hmm.hmm_device_private.anon_read
hmm.hmm_device_private.anon_read_prot
hmm.hmm_device_private.anon_write
hmm.hmm_device_private.anon_write_prot
hmm.hmm_device_private.anon_write_child
hmm.hmm_device_private.file_read
hmm.hmm_device_private.file_write
hmm.hmm_device_coherent.migrate
hmm.hmm_device_coherent.migrate_fault
hmm.hmm_device_coherent.migrate_shared
hmm.hmm_device_coherent.migrate_release
hmm2.hmm2_device_coherent.migrate_mixed
"

set -- $HMM_SPM
if ! insmod /lib/modules/hmm/test_hmm.ko spm_addr_dev0="$1" spm_addr_dev1="$2"; then
	dmesg | tail -n 20
	result "FAIL hmm-module (insmod test_hmm.ko spm_addr_dev0=$1 spm_addr_dev1=$2 failed)"
	exit 0
fi
result PASS hmm-module
args=
for t in $TESTS; do args="$args -r $t"; done

# An interval notifier of test_hmm's registered before the tracer starts, so the tracer probes
# dmirror_interval_invalidate from its first event (see mmnotif-hmm-hold.c).
/tests/mmnotif-hmm-hold /dev/hmm_dmirror0 >"$OUT/hmm-hold.out" 2>&1 &
hold=$!
i=0
while [ $i -lt 30 ] && ! grep -q mirroring "$OUT/hmm-hold.out"; do sleep 1; i=$((i + 1)); done

# "STARTS" of the tracer's dmirror_interval_invalidate row (interval calls count as starts).
traced_calls() {
	awk '/"callback": "dmirror_interval_invalidate/ { row = 1; next }
		row && /"starts":/ { gsub(/[^0-9]/, ""); print; exit }' "$1"
}

# The metrics are served on loopback, which init leaves down.
ifconfig lo 127.0.0.1 up || ip link set lo up
json=$OUT/check-hmm-tests.json
metrics=$OUT/hmm-metrics.txt
rm -f "$metrics"
echo 0 >"$TRACING/tracing_on"
echo 8192 >"$TRACING/buffer_size_kb"
echo dmirror_interval_invalidate >"$TRACING/set_ftrace_filter"
echo function >"$TRACING/current_tracer"
: >"$TRACING/trace"
started=$(date +%s)
"$BIN" check --ktap --json "$json" --metrics 127.0.0.1:9477 -- \
	sh -c "echo 1 >$TRACING/tracing_on && /tests/hmm-tests $args; rc=\$?; echo 0 >$TRACING/tracing_on;
		wget -q -O $metrics http://127.0.0.1:9477/metrics; exit \$rc" \
	>"$OUT/check-hmm-tests.out" 2>&1
rc=$?
secs=$(($(date +%s) - started))
kernel=$(grep -c ' dmirror_interval_invalidate <-' "$TRACING/trace")
header=$(grep -m 1 'entries-in-buffer/entries-written' "$TRACING/trace")
echo nop >"$TRACING/current_tracer"
: >"$TRACING/set_ftrace_filter"
kill $hold 2>/dev/null
wait $hold 2>/dev/null
traced=$(traced_calls "$json")
# A deliberate mismatch, to see this check fail (HMM_COUNT_SKEW=1 in the environment).
kernel=$((kernel + ${HMM_COUNT_SKEW:-0}))
written=$(echo "$header" | sed 's/.*entries-written: \([0-9]*\)\/\([0-9]*\).*/\1 \2/')
migrate=$(awk '/^mmnotif_range_starts_total\{.*event="migrate"/ { n += $NF } END { print n + 0 }' "$metrics" 2>/dev/null)
passed=$(grep -c '^ok ' "$OUT/check-hmm-tests.out")
cat "$OUT/check-hmm-tests.out"
echo "hmm-tests: $secs s, $passed ok lines; dmirror_interval_invalidate calls: tracer ${traced:-none}, ftrace $kernel; MIGRATE range starts ${migrate:-none}"
missed=$(counted_misses "$rc" "$OUT/check-hmm-tests.out")
[ "$missed" -gt 0 ] && rc=0
if [ "$rc" != 0 ]; then
	result "FAIL hmm-tests (check exit status $rc, want 0)"
elif [ "${written% *}" != "${written#* }" ]; then
	result "FAIL hmm-tests (ftrace's buffer lost entries: $header)"
elif [ "$kernel" = 0 ] || ! accounted "$traced" "$kernel" "$missed"; then
	result "FAIL hmm-tests (dmirror_interval_invalidate calls: tracer '${traced:-none}', ftrace '$kernel')"
elif [ "${migrate:-0}" -eq 0 ]; then
	grep mmnotif_range_starts_total "$metrics"
	result "FAIL hmm-tests (the tracer counted no MIGRATE range starts)"
else
	result "PASS hmm-tests$(misses_note "$missed")"
fi
rmmod test_hmm || result "FAIL hmm-module-unload"
