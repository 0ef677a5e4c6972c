//! Shares the few distinct comms, symbols and stacks a trace has instead of allocating them
//! per line: a replay then allocates nothing per event for them, and its memory stays flat
//! however long the trace is.
use std::collections::{HashMap, HashSet};

use foldhash::fast::RandomState;

use super::text::{Comm, Stack, Symbol};

/// Entries per table; bounded so that a hostile trace cannot grow it without limit.
const INTERNER_LIMIT: usize = 8192;

/// Bytes of stack text kept as keys of the stack table (a line may be 1 MiB long).
const STACK_TEXT_LIMIT: usize = 4 << 20;

/// Per-reader tables. The hasher is seeded per process (foldhash), so that crafted text
/// cannot make lookups collide.
#[derive(Default)]
pub(crate) struct Interner {
    comms: HashSet<Comm, RandomState>,
    symbols: HashSet<Symbol, RandomState>,
    /// Whole stacks by their text in the line (between the brackets), so a repeated stack
    /// costs one lookup instead of one per frame.
    stacks: HashMap<Box<str>, Stack, RandomState>,
    stack_text_bytes: usize,
}

impl Interner {
    pub(crate) fn comm(&mut self, text: &str) -> Comm {
        if let Some(c) = self.comms.get(text) {
            return c.clone();
        }
        let c = Comm::new(text);
        if self.comms.len() < INTERNER_LIMIT {
            self.comms.insert(c.clone());
        }
        c
    }

    pub(crate) fn symbol(&mut self, text: &str) -> Symbol {
        if let Some(s) = self.symbols.get(text) {
            return s.clone();
        }
        let s = Symbol::new(text);
        if self.symbols.len() < INTERNER_LIMIT {
            self.symbols.insert(s.clone());
        }
        s
    }

    /// The stack whose text is `key`, if one was made from that text before.
    pub(crate) fn known_stack(&self, key: &str) -> Option<&Stack> {
        self.stacks.get(key)
    }

    /// The frames of a stack whose text is `key`, made by `frames` the first time.
    pub(crate) fn stack<'t>(&mut self, key: &str, frames: impl Iterator<Item = &'t str>) -> Stack {
        if let Some(stack) = self.stacks.get(key) {
            return stack.clone();
        }
        let stack: Stack = frames.map(|f| self.symbol(f)).collect();
        if self.stacks.len() < INTERNER_LIMIT && self.stack_text_bytes + key.len() <= STACK_TEXT_LIMIT {
            self.stack_text_bytes += key.len();
            self.stacks.insert(key.into(), stack.clone());
        }
        stack
    }
}
