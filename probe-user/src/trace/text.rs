//! The text an event carries: kernel symbols and command names, shared rather than copied
//! because the checker keeps them per open range.
use std::{fmt, sync::Arc};

use serde::{Serialize, Serializer};

macro_rules! shared_text {
    ($(#[$doc:meta])* $name:ident) => {
        $(#[$doc])*
        /// Cheap to clone (reference counted), so the checker can keep it per open range.
        #[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
        pub struct $name(Arc<str>);

        impl $name {
            pub fn new(text: &str) -> Self {
                $name(Arc::from(text))
            }

            pub fn as_str(&self) -> &str {
                &self.0
            }
        }

        impl From<&str> for $name {
            fn from(text: &str) -> Self {
                $name::new(text)
            }
        }

        impl From<String> for $name {
            fn from(text: String) -> Self {
                $name(Arc::from(text))
            }
        }

        impl From<Arc<str>> for $name {
            fn from(text: Arc<str>) -> Self {
                $name(text)
            }
        }

        impl std::borrow::Borrow<str> for $name {
            fn borrow(&self) -> &str {
                &self.0
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }

        impl fmt::Debug for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                fmt::Debug::fmt(&*self.0, f)
            }
        }

        impl Serialize for $name {
            fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
                serializer.serialize_str(&self.0)
            }
        }
    };
}

shared_text!(
    /// A kernel symbol, optionally with `+0xoff` and ` [module]`.
    Symbol
);
shared_text!(
    /// A task's command name.
    Comm
);

impl Symbol {
    /// The function name without `+0xoff`, `/0xsize` or a ` [module]` suffix.
    pub fn function(&self) -> &str {
        let text = self.as_str();
        let end = text.find(['+', ' ', '/']).unwrap_or(text.len());
        text.get(..end).unwrap_or(text)
    }
}

impl Comm {
    /// From a kernel `char comm[16]`: up to the first NUL, invalid UTF-8 replaced.
    pub fn from_kernel_bytes(bytes: &[u8]) -> Comm {
        let len = bytes.iter().position(|&b| b == 0).unwrap_or(bytes.len());
        Comm::from(String::from_utf8_lossy(bytes.get(..len).unwrap_or(bytes)).into_owned())
    }
}

/// A kernel stack, innermost frame first. Shared rather than copied: a trace repeats the same
/// few stacks, and the checker keeps one per open range, so a clone is one reference count.
#[derive(Clone, PartialEq, Eq, Hash, Default)]
pub struct Stack(Arc<[Symbol]>);

impl Stack {
    pub fn frames(&self) -> &[Symbol] {
        &self.0
    }
}

impl std::ops::Deref for Stack {
    type Target = [Symbol];
    fn deref(&self) -> &[Symbol] {
        &self.0
    }
}

impl<'s> IntoIterator for &'s Stack {
    type Item = &'s Symbol;
    type IntoIter = std::slice::Iter<'s, Symbol>;
    fn into_iter(self) -> Self::IntoIter {
        self.0.iter()
    }
}

impl From<Vec<Symbol>> for Stack {
    fn from(frames: Vec<Symbol>) -> Self {
        Stack(frames.into())
    }
}

impl FromIterator<Symbol> for Stack {
    fn from_iter<I: IntoIterator<Item = Symbol>>(frames: I) -> Self {
        Stack(frames.into_iter().collect())
    }
}

impl fmt::Debug for Stack {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&*self.0, f)
    }
}

impl Serialize for Stack {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_seq(self.0.iter())
    }
}
