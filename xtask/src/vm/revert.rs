//! Source changes the test bed makes to a kernel it builds (`kernels.rs`: `SourceBuild`). Each is
//! generated from the downloaded source by matching the code it removes, never carried as a
//! patch file, and fails with one line when the source no longer holds that code.
use anyhow::{Result, bail};

/// One named change to a kernel source tree.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Change {
    /// Undo c2655835fd8c ("mm/mmu_notifier: ensure invalidate_start and invalidate_end occur in
    /// pairs", v5.12, 5.10.27 in stable) in `mn_hlist_invalidate_range_start`: drop the WARN about
    /// a failing subscriber with an end op and the loop that gives every subscriber with an end op
    /// its end when a non-blocking start fails. What is left skips those ends, as the 2019 RFC
    /// describes.
    RevertCompensatingEnds,
}

impl Change {
    /// Names the change in kernel releases (`CONFIG_LOCALVERSION`), stamps and logs.
    pub(crate) fn id(self) -> &'static str {
        match self {
            Change::RevertCompensatingEnds => "revert-c2655835fd8c",
        }
    }

    /// The one file the change edits, relative to the source tree.
    pub(crate) fn file(self) -> &'static str {
        match self {
            Change::RevertCompensatingEnds => "mm/mmu_notifier.c",
        }
    }

    /// The edited text of `file()`.
    pub(crate) fn apply(self, source: &str) -> Result<String> {
        match self {
            Change::RevertCompensatingEnds => revert_compensating_ends(source),
        }
    }
}

const FUNCTION: &str = "mn_hlist_invalidate_range_start(";
const WARN_LINE: &str = "WARN_ON(ops->invalidate_range_end);";
const LOOP_START: &str = "if (ret) {";
const LOOP_CALL: &str = "invalidate_range_end(subscription";

fn revert_compensating_ends(source: &str) -> Result<String> {
    let lines: Vec<&str> = source.split_inclusive('\n').collect();
    let what = format!("{} of c2655835fd8c", Change::RevertCompensatingEnds.file());
    let Some(begin) = lines.iter().position(|l| l.starts_with("static int") && l.contains(FUNCTION)).or_else(|| {
        // `static int` and the name on separate lines, as in the kernel's own style.
        lines.windows(2).position(|w| w[0].trim() == "static int" && w[1].starts_with(FUNCTION))
    }) else {
        bail!("{what}: the source has no mn_hlist_invalidate_range_start(): the revert cannot be generated");
    };
    let end = begin
        + lines[begin..]
            .iter()
            .position(|l| l.starts_with('}'))
            .ok_or_else(|| anyhow::anyhow!("{what}: mn_hlist_invalidate_range_start() has no closing brace"))?;
    let body = begin..end;

    let mut drop = vec![false; lines.len()];
    // The WARN, with the comment block right above it that explains it.
    let warns: Vec<usize> = body.clone().filter(|&i| lines[i].trim() == WARN_LINE).collect();
    let [warn] = warns.as_slice() else {
        bail!(
            "{what}: want one `{WARN_LINE}` in mn_hlist_invalidate_range_start(), found {}: the source changed, \
             the revert cannot be generated",
            warns.len()
        );
    };
    drop[*warn] = true;
    if *warn > 0 && lines[warn - 1].trim() == "*/" {
        let mut i = warn - 1;
        while i > begin && !lines[i].trim_start().starts_with("/*") {
            i -= 1;
        }
        if lines[i].trim_start().starts_with("/*") {
            drop[i..*warn].iter_mut().for_each(|d| *d = true);
        }
    }
    // The compensating loop: `if (ret) {` up to its matching brace, calling the ends.
    let Some(open) = body.clone().find(|&i| lines[i].trim() == LOOP_START) else {
        bail!("{what}: no `{LOOP_START}` block in mn_hlist_invalidate_range_start(): the revert cannot be generated");
    };
    let mut depth = 0i32;
    let mut close = None;
    for (i, line) in lines.iter().enumerate().take(end).skip(open) {
        depth += line.matches('{').count() as i32 - line.matches('}').count() as i32;
        if depth == 0 {
            close = Some(i);
            break;
        }
    }
    let Some(close) = close else {
        bail!("{what}: the `{LOOP_START}` block never closes: the revert cannot be generated");
    };
    if !lines[open..=close].iter().any(|l| l.contains(LOOP_CALL)) {
        bail!(
            "{what}: the `{LOOP_START}` block does not call `{LOOP_CALL}…)`: the source changed, the revert \
             cannot be generated"
        );
    }
    drop[open..=close].iter_mut().for_each(|d| *d = true);
    // The blank line that separated the loop from what follows.
    if lines.get(close + 1).is_some_and(|l| l.trim().is_empty()) {
        drop[close + 1] = true;
    }
    Ok(lines.iter().zip(&drop).filter(|(_, d)| !**d).map(|(l, _)| *l).collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A made-up function of the same shape as the kernel's (not its text): a loop over
    /// subscribers that records a failure, then the compensating block.
    const FIXED: &str = "\
static int other(void)
{
\tif (ret) {
\t\tkeep_me();
\t}
}

static int
mn_hlist_invalidate_range_start(struct subs *subs, struct range *range)
{
\tint ret = 0;

\tfor_each_sub(sub) {
\t\tint r = sub->ops->invalidate_range_start(sub, range);
\t\tif (r) {
\t\t\treport(r);
\t\t\t/*
\t\t\t * why a failing start may not have an end
\t\t\t */
\t\t\tWARN_ON(ops->invalidate_range_end);
\t\t\tret = r;
\t\t}
\t}

\tif (ret) {
\t\t/* give the started ones their end */
\t\tfor_each_sub(sub) {
\t\t\tif (!sub->ops->invalidate_range_end)
\t\t\t\tcontinue;
\t\t\tsub->ops->invalidate_range_end(subscription, range);
\t\t}
\t}
\tunlock();

\treturn ret;
}
";

    const REVERTED: &str = "\
static int other(void)
{
\tif (ret) {
\t\tkeep_me();
\t}
}

static int
mn_hlist_invalidate_range_start(struct subs *subs, struct range *range)
{
\tint ret = 0;

\tfor_each_sub(sub) {
\t\tint r = sub->ops->invalidate_range_start(sub, range);
\t\tif (r) {
\t\t\treport(r);
\t\t\tret = r;
\t\t}
\t}

\tunlock();

\treturn ret;
}
";

    #[test]
    fn removes_the_warn_and_the_compensating_loop_only() {
        assert_eq!(Change::RevertCompensatingEnds.apply(FIXED).unwrap(), REVERTED);
    }

    #[test]
    fn a_source_without_the_fix_is_refused_in_one_line() {
        let err = Change::RevertCompensatingEnds.apply(REVERTED).unwrap_err().to_string();
        assert!(err.contains("WARN_ON(ops->invalidate_range_end);") && err.contains("cannot be generated"), "{err}");
        assert!(!err.contains('\n'), "{err}");
        let err = Change::RevertCompensatingEnds.apply("int main(void) {}\n").unwrap_err().to_string();
        assert!(err.contains("no mn_hlist_invalidate_range_start()"), "{err}");
    }

    #[test]
    fn a_loop_that_no_longer_calls_the_ends_is_refused() {
        let changed = FIXED.replace("sub->ops->invalidate_range_end(subscription, range);", "nothing();");
        let err = Change::RevertCompensatingEnds.apply(&changed).unwrap_err().to_string();
        assert!(err.contains("does not call"), "{err}");
    }
}
