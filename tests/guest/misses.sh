# Sourced by the guest scenarios that run `check` and compare its counts with the kernel's own
# (kvm.sh, kvm-selftests.sh, hmm.sh, tracer.sh).
#
# On a kernel whose BPF programs can be preempted (7.x, CONFIG_PREEMPT_LAZY), the kernel now and
# then skips one of the tracer's programs (its per-program recursion guard, or bpf_prog_active
# held by a preempted map syscall) and counts the skip; the tracer reports it as "missed N probe
# hits" and `check` exits 5 (incomplete), never 1 for what follows the loss. Such a run passes
# only if that is the whole story: nothing lost in the ring, check incomplete for the misses
# alone, and every call the tracer did not see covered by the counted misses.

# counted_misses RC OUT: how many probe hits the kernel skipped and counted, when they alone made
# the check incomplete (RC 5, nothing lost in the ring buffer); 0 otherwise.
counted_misses() {
	_m_n=0
	if [ "$1" = 5 ]; then
		_m_n=$(grep -o 'lost 0, missed [0-9]* probe hits' "$2" | head -n 1 | sed 's/.*missed \([0-9]*\) probe hits/\1/')
	fi
	echo "${_m_n:-0}"
}

# accounted "TRACED..." "KERNEL..." MISSED: each kernel count is the tracer's, or above it by no
# more than the counted misses (pairs such as "starts ends" are compared item by item).
# (Variables are _m_-prefixed: a sourced function shares its caller's.)
accounted() {
	[ -n "$1" ] || return 1
	[ "$(echo "$1" | wc -w)" = "$(echo "$2" | wc -w)" ] || return 1
	_m_i=1
	for _m_k in $2; do
		_m_gap=$((_m_k - $(echo "$1" | cut -d' ' -f$_m_i)))
		[ "$_m_gap" -ge 0 ] && [ "$_m_gap" -le "$3" ] || return 1
		_m_i=$((_m_i + 1))
	done
}

# The words a PASS line carries when misses were accounted for.
misses_note() {
	[ "$1" -gt 0 ] && echo " (the kernel skipped $1 of the tracer's probe hits, counted and accounted for)"
}
