//! The ground floor: the words every other module uses for a call and who touched it, with no
//! dependency on any of them (only `secrets` for SHA-256).
//!
//! - Names: [`CallId`], [`AgentName`], [`UpstreamName`], [`ToolName`], [`ArgsDigest`] and
//!   [`SessionKey`], each its own type, so a tool name cannot be passed where an agent is meant.
//! - A call's life: [`CallStatus`] and the one table of moves, [`Transition`].
//! - Who did something, through which face: [`Actor`].
//! - Time as stored: [`Timestamp`], fixed-width RFC 3339 UTC text.
//! - A reviewer's choice: [`Action`]; who a reviewer can be: [`is_plausible_email`].
//! - The audit log's chain: [`AuditEvent`] and its hash.
//!
//! The text types are stored with `sqlx` as text and read back strictly: a row holding a status
//! or a time the code cannot read is an error when it is read, never a silent default.

mod action;
mod actor;
mod audit_chain;
mod digest;
mod email;
mod names;
mod status;
mod time;

pub use action::Action;
pub use actor::{Actor, Via};
pub use audit_chain::{AuditEvent, GENESIS, NewAuditEvent, event_hash};
pub use digest::{ArgsDigest, AttachKey};
pub use email::is_plausible_email;
pub use names::{AgentName, CallId, SessionKey, ToolName, UpstreamName};
pub use status::{CallStatus, Transition};
pub use time::{BadTime, Timestamp};

/// Stores a type as text: `$to` turns it into text, `$from` reads text back (an `Err` makes the
/// row unreadable rather than guessed).
macro_rules! stored_as_text {
    ($ty:ty, $to:expr, $from:expr) => {
        impl sqlx::Type<sqlx::Any> for $ty {
            fn type_info() -> sqlx::any::AnyTypeInfo {
                <String as sqlx::Type<sqlx::Any>>::type_info()
            }

            fn compatible(ty: &sqlx::any::AnyTypeInfo) -> bool {
                <String as sqlx::Type<sqlx::Any>>::compatible(ty)
            }
        }

        impl<'q> sqlx::Encode<'q, sqlx::Any> for $ty {
            fn encode_by_ref(
                &self,
                buf: &mut <sqlx::Any as sqlx::Database>::ArgumentBuffer,
            ) -> Result<sqlx::encode::IsNull, sqlx::error::BoxDynError> {
                let to: fn(&$ty) -> String = $to;
                <String as sqlx::Encode<'q, sqlx::Any>>::encode(to(self), buf)
            }
        }

        impl<'r> sqlx::Decode<'r, sqlx::Any> for $ty {
            fn decode(
                value: <sqlx::Any as sqlx::Database>::ValueRef<'r>,
            ) -> Result<Self, sqlx::error::BoxDynError> {
                let text = <String as sqlx::Decode<'r, sqlx::Any>>::decode(value)?;
                let from: fn(String) -> Result<$ty, String> = $from;
                Ok(from(text)?)
            }
        }
    };
}
pub(crate) use stored_as_text;
