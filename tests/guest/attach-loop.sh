#!/bin/sh
# Attach stability: the whole tracer attached and detached ATTACH_CYCLES times (default 200),
# alternating fentry and kprobe, while subscribers invalidate: KVM's (VMs registering, faulting
# and exiting in a loop, so registration-driven probing runs too), the test module's list and
# interval subscribers, and, where this kernel's test_hmm builds, HMM's mirror and migration.
# Every cycle must attach, stop with exit status 0, and leave the kernel without an oops or a
# BUG; a crash ends the guest and fails the run on the host.
# Each traffic source pauses ATTACH_TRAFFIC_PAUSE seconds (default 1) between its runs: under
# TCG all vCPUs share one host thread, and back-to-back traffic starves the tracer's own start
# (25-35 s per attach instead of 8-9), so a 200-cycle verdict would take hours. Paused, the
# invalidations still arrive all through every attach and detach.
# Not part of the default suite (minutes under TCG): `cargo xtask vm --scenario attach-loop`.
# ATTACH_CONTROL=1 (--append ATTACH_CONTROL=1) is the control: the same traffic and pace with no
# tracer at all, each cycle a pause as long as a typical start, so a crash can be blamed on the
# tracer or cleared of it (QEMU's multi-threaded TCG, `--tcg multi`).
BIN=/usr/local/bin/mmnotif-trace
DIR=$(dirname "$0")
RESULTS=${RESULTS:-/tmp/results}
CYCLES=${ATTACH_CYCLES:-200}
PAUSE=${ATTACH_TRAFFIC_PAUSE:-1}
CONTROL=${ATTACH_CONTROL:-0}
name=attach-loop
[ "$CONTROL" = 1 ] && name=attach-loop-control

result() { echo "MMNOTIF-TEST: $*" | tee -a "$RESULTS"; }

# alive PID: the process exists and has not exited (an exited child stays a zombie until waited
# for, and kill -0 still finds it).
alive() {
	state=$(awk '{ print $3 }' "/proc/$1/stat" 2>/dev/null)
	[ -n "$state" ] && [ "$state" != Z ]
}

# stop_tracer PID: SIGTERM, then up to STOP_WAIT seconds for it to exit. One still there is
# shown (state, wait channel, each thread's kernel stack) and killed: a hung stop is a failed
# cycle with its evidence, not a hung loop. Sets rc.
STOP_WAIT=${ATTACH_STOP_WAIT:-120}
stop_tracer() {
	kill -TERM "$1" 2>/dev/null
	n=0
	while alive "$1" && [ $n -lt $((STOP_WAIT * 10)) ]; do
		sleep 0.1
		n=$((n + 1))
	done
	if alive "$1"; then
		echo "attach-loop: cycle $i: the tracer did not stop within $STOP_WAIT s of SIGTERM"
		grep -E '^(State|Threads):' "/proc/$1/status"
		echo "wchan: $(cat "/proc/$1/wchan" 2>/dev/null)"
		for t in /proc/$1/task/*; do
			echo "thread ${t##*/}:"
			cat "$t/stack" 2>/dev/null
		done
		kill -KILL "$1"
	fi
	wait "$1"
	rc=$?
}

[ -c /dev/kvm ] || "$DIR/kvm.sh" load
if [ ! -c /dev/kvm ]; then
	result "FAIL $name (no /dev/kvm: KVM is part of the traffic)"
	exit 0
fi
dmesg -c >/dev/null

(while :; do "$BIN" workload >/dev/null 2>&1; sleep "$PAUSE"; done) &
kvm_traffic=$!
(while :; do "$DIR/mmnotif-basic" list-ops interval-seq >/dev/null 2>&1; sleep "$PAUSE"; done) &
module_traffic=$!
hmm_traffic=
set -- $HMM_SPM
if [ -z "$HMM_UNSUPPORTED" ] && [ -x /tests/hmm-tests ] &&
	insmod /lib/modules/hmm/test_hmm.ko spm_addr_dev0="$1" spm_addr_dev1="$2"; then
	# A mirror that faults and a coherent device that migrates (see hmm.sh for the subset).
	(while :; do
		/tests/hmm-tests -r hmm.hmm_device_private.anon_write -r hmm.hmm_device_coherent.migrate >/dev/null 2>&1
		sleep "$PAUSE"
	done) &
	hmm_traffic=$!
	echo "attach-loop: traffic from KVM, the test module and HMM"
else
	echo "attach-loop: traffic from KVM and the test module (no HMM here: ${HMM_UNSUPPORTED:-test_hmm did not load})"
fi

err=/tmp/attach-loop.err
# A line a minute, so a guest that stops making progress shows where, and whether its userspace
# still runs.
(while :; do
	sleep 60
	echo "attach-loop: alive at cycle $(cat /tmp/attach-loop.cycle 2>/dev/null), uptime $(cut -d' ' -f1 /proc/uptime) s"
done) &
heartbeat=$!
: >/tmp/attach-loop.ready
started=$(date +%s)
failed=0
i=1
while [ $i -le "$CYCLES" ]; do
	echo $i >/tmp/attach-loop.cycle
	if [ $((i % 2)) = 1 ]; then method=fentry; else method=kprobe; fi
	if [ "$CONTROL" = 1 ]; then
		sleep "3.$((i % 7))"
		[ $((i % 25)) = 0 ] && echo "attach-loop: $i of $CYCLES control cycles (no tracer), $(($(date +%s) - started)) s"
		i=$((i + 1))
		continue
	fi
	# Emptied here, not only by the tracer's redirection: that happens in the child, and the
	# wait below could otherwise find the previous cycle's line and stop a tracer mid-start.
	: >"$err"
	"$BIN" record --attach $method -o /tmp/attach-loop.jsonl 2>"$err" &
	tracer=$!
	n=0
	# A start that is only slow (all vCPUs share one host thread) is not a failure; one that
	# takes minutes is.
	while ! grep -q '^mmnotif-trace: kernel ' "$err" && [ $n -lt 3000 ] && alive $tracer; do
		sleep 0.1
		n=$((n + 1))
	done
	if grep -q '^mmnotif-trace: kernel ' "$err"; then
		# Attached for a varying while, so the detach meets the traffic at varying points.
		sleep "0.$((i % 7))"
		stop_tracer $tracer
	else
		stop_tracer $tracer
		rc="none (did not attach)"
	fi
	# "mmnotif-trace: ready in T s (...)": the start-up's time, by step.
	sed -n 's/^mmnotif-trace: ready in \([0-9.]*\) s.*/\1/p' "$err" >>/tmp/attach-loop.ready
	[ $((i % 25)) = 1 ] && grep '^mmnotif-trace: ready in' "$err"
	if [ "$rc" != 0 ]; then
		cat "$err"
		echo "attach-loop: cycle $i ($method): exit status $rc"
		failed=$((failed + 1))
	fi
	[ $((i % 25)) = 0 ] && echo "attach-loop: $i of $CYCLES cycles, $failed failed, $(($(date +%s) - started)) s"
	i=$((i + 1))
done
kill $heartbeat $kvm_traffic $module_traffic $hmm_traffic 2>/dev/null
wait $heartbeat $kvm_traffic $module_traffic $hmm_traffic 2>/dev/null
# The traffic's own programs may still be finishing.
sleep 1
# A migration may still hold the device open: give it time before unloading.
n=0
while [ -n "$hmm_traffic" ] && ! rmmod test_hmm 2>/dev/null && [ $n -lt 60 ]; do sleep 1; n=$((n + 1)); done

if [ "$CONTROL" != 1 ]; then
	ready=$(sort -n /tmp/attach-loop.ready | awk '{ v[NR] = $1 } END { if (NR) printf "%s/%s/%s", v[1], v[int((NR + 1) / 2)], v[NR] }')
	echo "attach-loop: start-up time min/median/max ${ready:-none} s over $(wc -l </tmp/attach-loop.ready) starts"
fi
oops=$(dmesg | grep -E -c "Oops|BUG:|general protection fault|WARNING: CPU" || true)
echo "attach-loop: $CYCLES cycles in $(($(date +%s) - started)) s, $failed failed, $oops kernel complaints"
if [ "$oops" != 0 ]; then
	dmesg | grep -E -B 2 -A 20 'Oops|BUG:|general protection fault|WARNING: CPU' | head -n 80
	result "FAIL $name ($oops kernel complaints in dmesg over $CYCLES cycles)"
elif [ "$CONTROL" = 1 ]; then
	result "PASS $name ($CYCLES cycles of KVM, module${hmm_traffic:+ and HMM} traffic, no tracer)"
elif [ "$failed" != 0 ]; then
	result "FAIL attach-loop ($failed of $CYCLES cycles did not attach and stop cleanly)"
else
	result "PASS attach-loop ($CYCLES cycles, fentry and kprobe alternating, under KVM, module${hmm_traffic:+ and HMM} traffic)"
fi
