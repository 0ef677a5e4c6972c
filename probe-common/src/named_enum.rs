//! [`named_enum!`](crate::named_enum): an enum whose variants have fixed names, declared from
//! one list, so adding a variant is one line.

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

        impl $name {
            /// Every variant, in declaration order.
            $vis const ALL: [$name; [$($name::$variant),*].len()] = [$($name::$variant),*];

            /// The variant's name.
            $vis const fn as_str(self) -> &'static str {
                match self {
                    $($name::$variant => $str,)*
                }
            }

            /// The variant named `name`.
            $vis fn from_name(name: &str) -> Option<$name> {
                match name {
                    $($str => Some($name::$variant),)*
                    _ => None,
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
