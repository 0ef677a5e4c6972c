#!/bin/sh
# Attach stability: the whole tracer attached and detached ATTACH_CYCLES times (default 200),
# alternating fentry and kprobe, while subscribers invalidate: KVM's (VMs registering, faulting
# and exiting in a loop, so registration-driven probing runs too) and the test module's list and
# interval subscribers. Every cycle must attach, stop with exit status 0, and leave the kernel
# without an oops or a BUG; a crash ends the guest and fails the run on the host.
# Not part of the default suite (minutes under TCG): `cargo xtask vm --scenario attach-loop`.
BIN=/usr/local/bin/mmnotif-trace
DIR=$(dirname "$0")
RESULTS=${RESULTS:-/tmp/results}
CYCLES=${ATTACH_CYCLES:-200}

result() { echo "MMNOTIF-TEST: $*" | tee -a "$RESULTS"; }

[ -c /dev/kvm ] || "$DIR/kvm.sh" load
if [ ! -c /dev/kvm ]; then
	result "FAIL attach-loop (no /dev/kvm: KVM is part of the traffic)"
	exit 0
fi
dmesg -c >/dev/null

(while :; do "$BIN" workload >/dev/null 2>&1 || sleep 1; done) &
kvm_traffic=$!
(while :; do "$DIR/mmnotif-basic" list-ops interval-seq >/dev/null 2>&1 || sleep 1; done) &
module_traffic=$!

err=/tmp/attach-loop.err
started=$(date +%s)
failed=0
i=1
while [ $i -le "$CYCLES" ]; do
	if [ $((i % 2)) = 1 ]; then method=fentry; else method=kprobe; fi
	"$BIN" record --attach $method -o /tmp/attach-loop.jsonl 2>"$err" &
	tracer=$!
	n=0
	while ! grep -q '^mmnotif-trace: kernel ' "$err" && [ $n -lt 600 ] && kill -0 $tracer 2>/dev/null; do
		sleep 0.1
		n=$((n + 1))
	done
	if grep -q '^mmnotif-trace: kernel ' "$err"; then
		# Attached for a varying while, so the detach meets the traffic at varying points.
		sleep "0.$((i % 7))"
		kill -TERM $tracer
		wait $tracer
		rc=$?
	else
		kill -TERM $tracer 2>/dev/null
		wait $tracer
		rc="none (did not attach)"
	fi
	if [ "$rc" != 0 ]; then
		cat "$err"
		echo "attach-loop: cycle $i ($method): exit status $rc"
		failed=$((failed + 1))
	fi
	[ $((i % 25)) = 0 ] && echo "attach-loop: $i of $CYCLES cycles, $failed failed, $(($(date +%s) - started)) s"
	i=$((i + 1))
done
kill $kvm_traffic $module_traffic 2>/dev/null
wait $kvm_traffic $module_traffic 2>/dev/null
# The traffic's own programs may still be finishing.
sleep 1

oops=$(dmesg | grep -E -c "Oops|BUG:|general protection fault|WARNING: CPU" || true)
echo "attach-loop: $CYCLES cycles in $(($(date +%s) - started)) s, $failed failed, $oops kernel complaints"
if [ "$oops" != 0 ]; then
	dmesg | grep -E -B 2 -A 20 'Oops|BUG:|general protection fault|WARNING: CPU' | head -n 80
	result "FAIL attach-loop ($oops kernel complaints in dmesg over $CYCLES cycles)"
elif [ "$failed" != 0 ]; then
	result "FAIL attach-loop ($failed of $CYCLES cycles did not attach and stop cleanly)"
else
	result "PASS attach-loop ($CYCLES cycles, fentry and kprobe alternating, under KVM and module traffic)"
fi
