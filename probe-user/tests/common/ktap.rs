//! A strict KTAP v1 parser written from the kernel's Documentation/dev-tools/ktap.rst, used to
//! validate `check --ktap` output. Besides the grammar it enforces the document's "must"s:
//! a version line first, a `1..N` plan before the results, numbering from 1 in steps of 1, as
//! many results as the plan says, no `#` in a description, `not ok` with TIMEOUT and ERROR,
//! subtests indented by two spaces and a failing subtest failing its parent. Unknown lines are
//! allowed by the format; in strict mode they are errors, since check prints none.

/// One test case result.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct TestResult {
    pub number: usize,
    pub ok: bool,
    pub description: String,
    /// SKIP, TODO, XFAIL, TIMEOUT or ERROR.
    pub directive: Option<String>,
    /// The diagnostic data after `#` (and after the directive).
    pub data: Option<String>,
    /// Diagnostic lines directly before the result line.
    pub diagnostics: Vec<String>,
    pub subtests: Vec<TestResult>,
}

impl TestResult {
    pub(crate) fn skipped(&self) -> bool {
        self.directive.as_deref() == Some("SKIP")
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Document {
    pub version: String,
    pub plan: Option<usize>,
    pub results: Vec<TestResult>,
    /// Diagnostic lines before the first result (and before the plan).
    pub header_diagnostics: Vec<String>,
}

const DIRECTIVES: [&str; 5] = ["SKIP", "TODO", "XFAIL", "TIMEOUT", "ERROR"];
const VERSIONS: [&str; 3] = ["KTAP version 1", "TAP version 13", "TAP version 14"];

fn indent_of(line: &str) -> usize {
    line.len() - line.trim_start_matches(' ').len()
}

fn plan_of(line: &str) -> Option<usize> {
    line.strip_prefix("1..")?.parse().ok()
}

fn result_of(line: &str, line_no: usize) -> Result<Option<TestResult>, String> {
    let (ok, rest) = if let Some(rest) = line.strip_prefix("not ok ") {
        (false, rest)
    } else if let Some(rest) = line.strip_prefix("ok ") {
        (true, rest)
    } else {
        return Ok(None);
    };
    let digits = rest.len() - rest.trim_start_matches(|c: char| c.is_ascii_digit()).len();
    let number: usize =
        rest[..digits].parse().map_err(|_| format!("line {line_no}: a result needs a test number: {line:?}"))?;
    let rest = &rest[digits..];
    if !rest.is_empty() && !rest.starts_with(' ') {
        return Err(format!("line {line_no}: the number must be followed by a space: {line:?}"));
    }
    // The description cannot contain '#': the first '#' starts the directive and data.
    let (description, tail) = match rest.find('#') {
        Some(at) => {
            if !rest[..at].ends_with(' ') && at != 0 {
                return Err(format!("line {line_no}: '#' must be preceded by a space: {line:?}"));
            }
            (rest[..at].trim(), Some(rest[at + 1..].trim()))
        }
        None => (rest.trim(), None),
    };
    let (directive, data) = match tail {
        None => (None, None),
        Some(tail) => {
            let first = tail.split_whitespace().next().unwrap_or("");
            if DIRECTIVES.contains(&first) {
                let data = tail[first.len()..].trim();
                (Some(first.to_owned()), (!data.is_empty()).then(|| data.to_owned()))
            } else {
                (None, (!tail.is_empty()).then(|| tail.to_owned()))
            }
        }
    };
    if ok && matches!(directive.as_deref(), Some("TIMEOUT" | "ERROR")) {
        return Err(format!("line {line_no}: a {} result must be \"not ok\": {line:?}", directive.unwrap_or_default()));
    }
    Ok(Some(TestResult {
        number,
        ok,
        description: description.to_owned(),
        directive,
        data,
        diagnostics: Vec::new(),
        subtests: Vec::new(),
    }))
}

struct Parser<'a> {
    lines: Vec<&'a str>,
    at: usize,
    strict: bool,
}

impl Parser<'_> {
    /// Parses one level, starting at its version line indented by `indent`.
    fn level(&mut self, indent: usize) -> Result<Document, String> {
        let version = self.lines[self.at][indent..].trim_end().to_owned();
        if !VERSIONS.contains(&version.as_str()) {
            return Err(format!("line {}: expected a version line, got {version:?}", self.at + 1));
        }
        self.at += 1;
        let mut doc = Document { version, plan: None, results: Vec::new(), header_diagnostics: Vec::new() };
        let mut diagnostics = Vec::new();
        let mut subtests: Option<Document> = None;
        while self.at < self.lines.len() {
            let raw = self.lines[self.at];
            let line_no = self.at + 1;
            if raw.trim().is_empty() {
                if self.strict {
                    return Err(format!("line {line_no}: blank line (not a KTAP line)"));
                }
                self.at += 1;
                continue;
            }
            let depth = indent_of(raw);
            if depth < indent {
                break;
            }
            if depth > indent {
                if depth == indent + 2 && VERSIONS.contains(&raw.trim()) {
                    if subtests.is_some() {
                        return Err(format!("line {line_no}: a second subtest block before its parent's result"));
                    }
                    subtests = Some(self.level(indent + 2)?);
                    continue;
                }
                if self.strict {
                    return Err(format!("line {line_no}: unexpected indentation: {raw:?}"));
                }
                self.at += 1;
                continue;
            }
            let line = &raw[indent..];
            if let Some(text) = line.strip_prefix('#') {
                diagnostics.push(text.strip_prefix(' ').unwrap_or(text).to_owned());
            } else if let Some(n) = plan_of(line) {
                if doc.plan.is_some() || !doc.results.is_empty() {
                    return Err(format!("line {line_no}: a plan must follow the version line, before any result"));
                }
                doc.plan = Some(n);
                doc.header_diagnostics.append(&mut diagnostics);
            } else if let Some(mut result) = result_of(line, line_no)? {
                let want = doc.results.len() + 1;
                if result.number != want {
                    return Err(format!("line {line_no}: test number {} where {want} was due", result.number));
                }
                if let Some(sub) = subtests.take() {
                    let failed = sub.results.iter().any(|t| !t.ok && !t.skipped());
                    if failed && result.ok {
                        return Err(format!("line {line_no}: a subtest failed but its parent is \"ok\""));
                    }
                    result.subtests = sub.results;
                }
                result.diagnostics = std::mem::take(&mut diagnostics);
                doc.results.push(result);
            } else if self.strict {
                return Err(format!("line {line_no}: not a KTAP line: {line:?}"));
            }
            self.at += 1;
        }
        if subtests.is_some() {
            return Err(format!("line {}: subtests without their parent's result line", self.at));
        }
        if let Some(n) = doc.plan
            && n != doc.results.len()
        {
            return Err(format!("the plan says 1..{n} but there are {} results", doc.results.len()));
        }
        Ok(doc)
    }
}

/// Parses a KTAP document. With `strict`, the first line must be the version line and every
/// line must be a KTAP line; otherwise lines before the version line (a command's own output)
/// and unknown lines are skipped, as the format allows.
pub(crate) fn parse(text: &str, strict: bool) -> Result<Document, String> {
    let lines: Vec<&str> = text.lines().collect();
    let start = if strict {
        0
    } else {
        lines.iter().position(|l| VERSIONS.contains(&l.trim_end())).ok_or("no KTAP version line")?
    };
    if lines.get(start).is_none_or(|l| !VERSIONS.contains(&l.trim_end())) {
        return Err(format!("line {}: the document must begin with a version line", start + 1));
    }
    let mut parser = Parser { lines, at: start, strict };
    let doc = parser.level(0)?;
    if parser.at < parser.lines.len() && strict {
        return Err(format!("line {}: text after the document", parser.at + 1));
    }
    Ok(doc)
}
