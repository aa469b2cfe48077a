//! GraphQL enums mirroring the domain enums (the `remote` attribute keeps the two in step).

use async_graphql::Enum;

#[derive(Enum, Copy, Clone, Eq, PartialEq)]
#[graphql(remote = "crate::auth::Role")]
pub enum Role {
    User,
    Moderator,
    Reviewer,
    Admin,
}

#[derive(Enum, Copy, Clone, Eq, PartialEq)]
#[graphql(remote = "crate::services::accounts::Gender")]
pub enum Gender {
    Unspecified,
    Male,
    Female,
    Other,
}

/// What an SMS code from `requestPhoneCode` may be used for; a code works for its purpose only.
#[derive(Enum, Copy, Clone, Eq, PartialEq)]
#[graphql(remote = "crate::services::phone_codes::Purpose")]
pub enum PhoneCodePurpose {
    /// `register`.
    Register,
    /// `loginWithCode`.
    Login,
    /// `resetPassword`.
    ResetPassword,
    /// `changePhone`: sent to the new number; asking needs a signed-in member.
    ChangePhone,
}

/// How a list of posts is ordered.
#[derive(Enum, Copy, Clone, Eq, PartialEq, Default)]
#[graphql(remote = "crate::services::posts::Order")]
pub enum PostOrder {
    /// Newest first.
    #[default]
    Latest,
    /// Most engagement for its age first (see the API guide for the formula).
    Hot,
}

/// How `login`/`register` hand the session to the client.
#[derive(Enum, Copy, Clone, Eq, PartialEq, Default)]
pub enum SessionDelivery {
    /// Return the token in the payload, for `Authorization: Bearer` (mobile apps, scripts).
    #[default]
    Bearer,
    /// Set an HttpOnly, SameSite=Lax cookie and leave `token` null, so page scripts never see it.
    Cookie,
}

/// What a code from `requestEmailCode` may be used for. (Codes that prove a new address come from
/// `addEmail`.)
#[derive(Enum, Copy, Clone, Eq, PartialEq)]
pub enum EmailCodePurpose {
    /// `resetPassword` with `email`.
    ResetPassword,
}

impl From<EmailCodePurpose> for crate::services::email::Purpose {
    fn from(p: EmailCodePurpose) -> Self {
        match p {
            EmailCodePurpose::ResetPassword => crate::services::email::Purpose::ResetPassword,
        }
    }
}
