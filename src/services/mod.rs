//! Domain services: the community's rules, as plain `async fn(db, ...)` that tests can call without
//! HTTP. Resolvers call these; these never know about GraphQL or HTTP.

/// An enum stored as its upper-case name: `as_str`, `parse` (an unknown stored name is an internal
/// error, never a guess) and `ALL`.
macro_rules! names {
    ($(#[$m:meta])* $name:ident { $($variant:ident = $text:literal),* $(,)? }) => {
        $(#[$m])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
        pub enum $name { $($variant),* }

        impl $name {
            pub const ALL: &[$name] = &[$($name::$variant),*];

            pub fn as_str(self) -> &'static str {
                match self { $($name::$variant => $text),* }
            }

            /// A stored name this build does not know is an error, never a guess.
            pub fn parse(s: &str) -> AppResult<$name> {
                match s {
                    $($text => Ok($name::$variant),)*
                    _ => Err(AppError::internal(format!("unknown {} {s:?}", stringify!($name)))),
                }
            }
        }
    };
}

pub mod accounts;
pub mod activity;
pub mod audit;
pub mod boards;
pub mod comments;
pub mod developer_apps;
pub mod email;
pub mod email_outbox;
pub mod export;
pub mod history;
pub mod identity;
pub mod live;
pub mod media;
pub mod messaging;
pub mod notices;
pub mod notifications;
pub mod oauth;
pub mod page;
pub mod phone_codes;
pub mod policy;
pub mod posts;
pub mod privacy;
pub mod push;
pub mod recommend;
pub mod replay;
pub mod reports;
pub mod retention;
pub mod search;
pub mod signin;
pub mod sms_outbox;
pub mod social;
pub mod streams;
pub mod thumbnails;
pub mod validate;
