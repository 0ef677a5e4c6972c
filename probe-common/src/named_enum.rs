//! [`named_enum!`](crate::named_enum): an enum whose variants have fixed names, declared from
//! one list, so adding a variant is one line; and [`open_named_enum!`](crate::open_named_enum),
//! the same for a numbering defined elsewhere, with a fallback for values outside the list.

/// Declares a fieldless enum from one list of `Variant => "name"` lines, and with it
/// `ALL` (every variant, in declaration order), `as_str` (the variant's name),
/// `from_name` (its inverse) and `Display` (the name).
///
/// With `enum Name: u32` (any integer type) every variant also gives its value,
/// `Variant = 4 => "name"`; the enum is then `#[repr(u32)]` with exactly those
/// discriminants, and `from_repr` maps a value back to its variant.
///
/// ```
/// probe_common::named_enum! {
///     #[derive(Clone, Copy, Debug, PartialEq, Eq)]
///     pub enum Colour {
///         Red => "red",
///         /// Doc comments and attributes go on the variant as usual.
///         Green => "green",
///     }
/// }
/// assert_eq!(Colour::ALL, [Colour::Red, Colour::Green]);
/// assert_eq!(Colour::Green.as_str(), "green");
/// assert_eq!(Colour::from_name("red"), Some(Colour::Red));
///
/// probe_common::named_enum! {
///     #[derive(Clone, Copy, Debug, PartialEq, Eq)]
///     pub enum Kind: u32 {
///         One = 1 => "one",
///         Two = 2 => "two",
///     }
/// }
/// assert_eq!(Kind::Two as u32, 2);
/// assert_eq!(Kind::from_repr(1), Some(Kind::One));
/// assert_eq!(Kind::from_repr(3), None);
/// ```
#[macro_export]
macro_rules! named_enum {
    // Shared with `open_named_enum!`: the list of listed variants and the lookup by name.
    (@by_name $vis:vis $name:ident, $list:ident = $list_doc:literal, $($variant:ident => $str:literal),*) => {
        impl $name {
            #[doc = $list_doc]
            $vis const $list: [$name; [$($name::$variant),*].len()] = [$($name::$variant),*];

            /// The listed variant named `name`.
            $vis fn from_name(name: &str) -> Option<$name> {
                match name {
                    $($str => Some($name::$variant),)*
                    _ => None,
                }
            }
        }
    };
    (
        $(#[$meta:meta])*
        $vis:vis enum $name:ident: $repr:ident {
            $(
                $(#[$vmeta:meta])*
                $variant:ident = $value:literal => $str:literal
            ),* $(,)?
        }
    ) => {
        $crate::named_enum! {
            $(#[$meta])*
            #[repr($repr)]
            $vis enum $name {
                $($(#[$vmeta])* $variant = $value => $str,)*
            }
        }

        impl $name {
            /// The variant whose discriminant is `value`.
            $vis const fn from_repr(value: $repr) -> Option<$name> {
                match value {
                    $($value => Some($name::$variant),)*
                    _ => None,
                }
            }
        }
    };
    (
        $(#[$meta:meta])*
        $vis:vis enum $name:ident {
            $(
                $(#[$vmeta:meta])*
                $variant:ident $(= $value:literal)? => $str:literal
            ),* $(,)?
        }
    ) => {
        $(#[$meta])*
        $vis enum $name {
            $($(#[$vmeta])* $variant $(= $value)?,)*
        }

        $crate::named_enum!(@by_name $vis $name, ALL = "Every variant, in declaration order.", $($variant => $str),*);

        impl $name {
            /// The variant's name.
            $vis const fn as_str(self) -> &'static str {
                match self {
                    $($name::$variant => $str,)*
                }
            }
        }

        impl ::core::fmt::Display for $name {
            fn fmt(&self, f: &mut ::core::fmt::Formatter<'_>) -> ::core::fmt::Result {
                f.write_str(self.as_str())
            }
        }
    };
}

/// Like [`named_enum!`](crate::named_enum) with values, for a numbering defined elsewhere (the
/// kernel's): a value outside the list is kept, in the fallback variant named after `else`, so
/// it survives a round trip. Declares `KNOWN` (the listed variants, in declaration order),
/// `from_raw`/`raw` (total both ways), `name` (`None` for the fallback), `from_name`, and
/// `Display` (the name, else the number).
///
/// ```
/// probe_common::open_named_enum! {
///     #[derive(Clone, Copy, Debug, PartialEq, Eq)]
///     pub enum Detector: u32 {
///         Kfence = 0 => "kfence",
///         Warning = 2 => "warning",
///     } else {
///         /// A value this list does not name.
///         Other
///     }
/// }
/// assert_eq!(Detector::KNOWN, [Detector::Kfence, Detector::Warning]);
/// assert_eq!(Detector::from_raw(2), Detector::Warning);
/// assert_eq!(Detector::from_raw(7), Detector::Other(7));
/// assert_eq!((Detector::Warning.raw(), Detector::Other(7).raw()), (2, 7));
/// assert_eq!((Detector::Kfence.name(), Detector::Other(7).name()), (Some("kfence"), None));
/// assert_eq!(Detector::from_name("warning"), Some(Detector::Warning));
/// assert_eq!(Detector::from_name("7"), None);
/// # extern crate std;
/// # use std::string::ToString;
/// assert_eq!((Detector::Warning.to_string(), Detector::Other(7).to_string()), ("warning".into(), "7".into()));
/// ```
#[macro_export]
macro_rules! open_named_enum {
    (
        $(#[$meta:meta])*
        $vis:vis enum $name:ident: $repr:ident {
            $(
                $(#[$vmeta:meta])*
                $variant:ident = $value:literal => $str:literal
            ),* $(,)?
        } else {
            $(#[$ometa:meta])*
            $other:ident
        }
    ) => {
        $(#[$meta])*
        $vis enum $name {
            $($(#[$vmeta])* $variant,)*
            $(#[$ometa])* $other($repr),
        }

        $crate::named_enum!(
            @by_name $vis $name, KNOWN = "Every variant but the fallback, in declaration order.", $($variant => $str),*
        );

        impl $name {
            /// The variant for `value`: the fallback when the list does not name it.
            $vis const fn from_raw(value: $repr) -> $name {
                match value {
                    $($value => $name::$variant,)*
                    other => $name::$other(other),
                }
            }

            /// The value, as the other side numbers it.
            $vis const fn raw(self) -> $repr {
                match self {
                    $($name::$variant => $value,)*
                    $name::$other(value) => value,
                }
            }

            /// The variant's name; `None` for a value outside the list.
            $vis const fn name(self) -> Option<&'static str> {
                match self {
                    $($name::$variant => Some($str),)*
                    $name::$other(_) => None,
                }
            }
        }

        impl ::core::fmt::Display for $name {
            fn fmt(&self, f: &mut ::core::fmt::Formatter<'_>) -> ::core::fmt::Result {
                match self.name() {
                    Some(name) => f.write_str(name),
                    None => ::core::write!(f, "{}", self.raw()),
                }
            }
        }
    };
}
