#!/bin/busybox sh
# PID 1 of the test guest: mounts, loads the test module, runs the guest suite
# and any extra command, prints the result line and powers off.
# /etc/mmnotif-vm.conf (written by `cargo xtask vm`) sets RUN_SUITE, SCENARIOS, KEEP.
/bin/busybox mkdir -p /bin /sbin /usr/bin /usr/sbin /proc /sys /dev /tmp /run
/bin/busybox --install -s
export PATH=/usr/local/bin:/bin:/sbin:/usr/bin:/usr/sbin
export HOME=/root

mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev 2>/dev/null
mount -t tmpfs tmpfs /tmp
mount -t tmpfs tmpfs /run
mount -t tracefs tracefs /sys/kernel/tracing || echo "MMNOTIF-GUEST: no tracefs"
mount -t debugfs debugfs /sys/kernel/debug || echo "MMNOTIF-GUEST: no debugfs"
mount -t bpf bpf /sys/fs/bpf || echo "MMNOTIF-GUEST: no bpffs"
mount -t cgroup2 cgroup2 /sys/fs/cgroup || echo "MMNOTIF-GUEST: no cgroup2"
ulimit -l unlimited 2>/dev/null

RUN_SUITE=1
SCENARIOS=
KEEP=0
KERNEL_LACKS=
[ -f /etc/mmnotif-vm.conf ] && . /etc/mmnotif-vm.conf
# KERNEL_LACKS: upstream fixes this kernel was built without (a test-bed kernel built from
# source); the suite and the scenarios expect the kernel's behaviour without them.
export RESULTS=/tmp/results SCENARIOS KERNEL_LACKS HMM_UNSUPPORTED HMM_SPM KVM_SELFTESTS_UNSUPPORTED
: >"$RESULTS"
result() { echo "MMNOTIF-TEST: $*" | tee -a "$RESULTS"; }

echo "MMNOTIF-GUEST: kernel $(uname -r)${KERNEL_LACKS:+ (built without $KERNEL_LACKS)}, $(nproc) cpus, $(awk '/MemTotal/ {print $2 " kB"}' /proc/meminfo)"
if insmod /lib/modules/mmnotif_test.ko; then result PASS module-load; else result FAIL module-load; fi

[ "$RUN_SUITE" = 1 ] && /tests/suite.sh

if [ -x /etc/mmnotif-guest-cmd ]; then
	echo "=== guest command: $(tail -n 1 /etc/mmnotif-guest-cmd)"
	/etc/mmnotif-guest-cmd
	rc=$?
	if [ $rc = 0 ]; then result PASS guest-command; else result FAIL "guest-command (exit status $rc)"; fi
fi

if [ "$KEEP" = 1 ]; then
	echo "MMNOTIF-GUEST: --keep: shell on the console; exit it to power off"
	setsid cttyhack sh
fi

if grep -q mmnotif_test /proc/modules; then
	if rmmod mmnotif_test; then result PASS module-unload; else result FAIL module-unload; fi
fi
# Last: scenarios that leave tasks stuck in the kernel (they load the module again).
[ "$RUN_SUITE" = 1 ] && /tests/suite.sh leak

pass=$(grep -c '^MMNOTIF-TEST: PASS' "$RESULTS")
fail=$(grep -c '^MMNOTIF-TEST: FAIL' "$RESULTS")
echo "MMNOTIF-GUEST-RESULT: pass $pass fail $fail"
sync
poweroff -f
