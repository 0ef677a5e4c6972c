#!/bin/sh
# The guest suite: runs each guest test program and appends its
# "MMNOTIF-TEST: PASS|FAIL <name>" lines to $RESULTS (default /tmp/results).
# A program that exits non-zero without printing a FAIL line counts as one failure.
RESULTS=${RESULTS:-/tmp/results}
DIR=$(dirname "$0")

run() {
	name=$1
	shift
	echo "=== $name: $*"
	{ "$@" 2>&1; echo "$?" >/tmp/rc.$name; } | tee /tmp/out.$name
	rc=$(cat /tmp/rc.$name)
	grep '^MMNOTIF-TEST: ' /tmp/out.$name >>"$RESULTS"
	if [ "$rc" != 0 ] && ! grep -q '^MMNOTIF-TEST: FAIL' /tmp/out.$name; then
		echo "MMNOTIF-TEST: FAIL $name (exit status $rc, no result line)" | tee -a "$RESULTS"
	fi
	if ! grep -q '^MMNOTIF-TEST: ' /tmp/out.$name && [ "$rc" = 0 ]; then
		echo "MMNOTIF-TEST: FAIL $name (ran no scenario)" | tee -a "$RESULTS"
	fi
}

# SCENARIOS (space separated, empty: all) selects scenarios; oom-* belong to mmnotif-oom,
# the others (list-ops list-release interval-seq list-buggy-blockable) to mmnotif-basic.
# leave-registered runs last: it leaves slots on a dead mm for the module unload that follows.
# kvm-attach (tests/guest/kvm.sh) needs the tracer in the guest; so do attach-loop
# (tests/guest/attach-loop.sh), which runs only when named, hmm-tests (tests/guest/hmm.sh) and
# kvm-selftests (tests/guest/kvm-selftests.sh).
# The interval-tree leak scenarios (oom-itree-*) leave tasks blocked in the module for good, so
# the module cannot be unloaded after them: init.sh runs them after the unload, as `suite.sh leak`.
LEAK_SCENARIOS="oom-itree-list oom-itree-list-disjoint oom-itree-only"
# process_mrelease(2) exists since 5.15 (kernel_facts.rs: ProcessMrelease).
grep -q ' __x64_sys_process_mrelease$' /proc/kallsyms && LEAK_SCENARIOS="$LEAK_SCENARIOS oom-itree-list-mrelease"
basic= oom= leave= kvm= leak= loop= hmm= kvmst=
for s in $SCENARIOS; do
	case $s in
	oom-itree-*) leak="$leak $s" ;;
	oom-*) oom="$oom $s" ;;
	leave-registered) leave=1 ;;
	kvm-attach) kvm=1 ;;
	attach-loop) loop=1 ;;
	hmm-tests) hmm=1 ;;
	kvm-selftests) kvmst=1 ;;
	*) basic="$basic $s" ;;
	esac
done
# A kernel built without c2655835fd8c (the compensating ends): the 2019 RFC's bug, live. Only the
# scenarios whose outcome that fix decides, plus the clean ones the recordings are compared on;
# the rest of the suite expects the fix (e.g. its WARN) and is the stock kernels' job.
case " $KERNEL_LACKS " in
*" c2655835fd8c "*)
	[ "$1" = leak ] && exit 0
	run oom "$DIR/mmnotif-oom" oom-baseline oom-eagain oom-rfc2019
	if [ -x /usr/local/bin/mmnotif-trace ]; then
		SCENARIOS_UNDER_TRACE="list-ops oom-baseline oom-rfc2019" CHECK_CASES=skipped-ends "$DIR/tracer.sh"
		# Says why the kernel's HMM tests do not run here (a SKIP line).
		"$DIR/hmm.sh"
	fi
	exit 0
	;;
esac
if [ "$1" = leak ]; then
	[ -z "$SCENARIOS" ] && leak=$LEAK_SCENARIOS
	[ -n "$leak" ] || exit 0
	if ! insmod /lib/modules/mmnotif_test.ko; then
		echo "MMNOTIF-TEST: FAIL leak-module-load" | tee -a "$RESULTS"
		exit 0
	fi
	run leak "$DIR/mmnotif-oom" $leak
	if [ -x /usr/local/bin/mmnotif-trace ] && [ -z "$SCENARIOS" ]; then
		SCENARIOS_UNDER_TRACE=$leak CHECK_CASES=leak "$DIR/tracer.sh"
	fi
	exit 0
fi
if [ -z "$SCENARIOS" ] || [ -n "$basic" ]; then run basic "$DIR/mmnotif-basic" $basic; fi
if [ -z "$SCENARIOS" ] || [ -n "$oom" ]; then run oom "$DIR/mmnotif-oom" $oom; fi
# The same scenarios under the tracer, when the guest has it (`cargo xtask test` puts it there).
if [ -x /usr/local/bin/mmnotif-trace ] && [ -z "$SCENARIOS" ]; then "$DIR/tracer.sh"; fi
if [ -z "$SCENARIOS" ] || [ -n "$kvm" ]; then
	if [ -x /usr/local/bin/mmnotif-trace ]; then
		"$DIR/kvm.sh"
	elif [ -n "$kvm" ]; then
		echo "MMNOTIF-TEST: FAIL kvm-attach (needs the tracer in the guest: --with-binary)" | tee -a "$RESULTS"
	fi
fi
# The kernel's own HMM test suite under the tracer (tests/guest/hmm.sh).
if [ -z "$SCENARIOS" ] || [ -n "$hmm" ]; then
	if [ -x /usr/local/bin/mmnotif-trace ]; then
		"$DIR/hmm.sh"
	elif [ -n "$hmm" ]; then
		echo "MMNOTIF-TEST: FAIL hmm-tests (needs the tracer in the guest: --with-binary)" | tee -a "$RESULTS"
	fi
fi
# KVM's own selftests under the tracer (tests/guest/kvm-selftests.sh; about a minute per guest,
# docs/vm-testbed.md).
if [ -z "$SCENARIOS" ] || [ -n "$kvmst" ]; then
	if [ -x /usr/local/bin/mmnotif-trace ]; then
		"$DIR/kvm-selftests.sh"
	elif [ -n "$kvmst" ]; then
		echo "MMNOTIF-TEST: FAIL kvm-selftests (needs the tracer in the guest: --with-binary)" | tee -a "$RESULTS"
	fi
fi
if [ -n "$loop" ]; then
	if [ -x /usr/local/bin/mmnotif-trace ]; then
		"$DIR/attach-loop.sh"
	else
		echo "MMNOTIF-TEST: FAIL attach-loop (needs the tracer in the guest: --with-binary)" | tee -a "$RESULTS"
	fi
fi
if [ -z "$SCENARIOS" ] || [ -n "$leave" ]; then run leave "$DIR/mmnotif-basic" leave-registered; fi
