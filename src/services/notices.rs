//! Security and incident notices off the site: besides the in-site notification, each goes to the
//! member's phone through the SMS outbox and to their verified email through the email outbox, in
//! the transaction that records it, so a notice is never
//! recorded without its SMS nor an SMS queued for a notice that was rolled back. These notices
//! cannot be muted: the member may not be the one signed in.

use chrono::{DateTime, Utc};
use entity::users;
use sea_orm::{ColumnTrait, ConnectionTrait, EntityTrait, QueryFilter, QuerySelect};

use crate::error::AppResult;
use crate::seal::Sealer;
use crate::services::sms_outbox;

/// The longest notice text an SMS carries; longer ones are cut and point to the site.
const SMS_CHARS: usize = 120;

/// The SMS text of a notice, cut to [`SMS_CHARS`] (the provider's signature names the sender).
pub fn sms_text(notice: &str) -> String {
    let mut text: String = notice.chars().take(SMS_CHARS).collect();
    if notice.chars().count() > SMS_CHARS {
        text.push_str("… (ecer)");
    }
    text
}

/// A member's id, phone, email and when the email was verified.
type Channels = (i64, Option<String>, Option<String>, Option<DateTime<Utc>>);

/// Queues `notice` to the phone of each of `user_ids` that has one (erased accounts have none), and
/// to the email address of each that has a verified one.
pub async fn queue_off_site(
    db: &impl ConnectionTrait,
    keys: &Sealer,
    user_ids: &[i64],
    notice: &str,
    broadcast_id: Option<i64>,
) -> AppResult<()> {
    if user_ids.is_empty() {
        return Ok(());
    }
    let members: Vec<Channels> = users::Entity::find()
        .select_only()
        .columns([users::Column::Id, users::Column::Phone, users::Column::Email, users::Column::EmailVerifiedAt])
        .filter(users::Column::Id.is_in(user_ids.iter().copied()))
        .filter(users::Column::DeletedAt.is_null())
        .into_tuple()
        .all(db)
        .await?;
    let text = sms_text(notice);
    let now = Utc::now();
    let (mut sms, mut mail) = (Vec::new(), Vec::new());
    for (user_id, phone, email, verified) in members {
        if let Some(phone) = phone {
            sms.push(sms_outbox::notice_row(keys, &phone, &text, broadcast_id, now)?);
        }
        if let (Some(address), Some(_)) = (email, verified) {
            mail.push(crate::services::email::notice_row(keys, user_id, address, notice, broadcast_id, now)?);
        }
    }
    // One statement per channel for the whole list (a broadcast chunk is 500 members).
    if !sms.is_empty() {
        entity::sms_outbox::Entity::insert_many(sms).exec_without_returning(db).await?;
    }
    if !mail.is_empty() {
        entity::email_outbox::Entity::insert_many(mail).exec_without_returning(db).await?;
    }
    Ok(())
}

/// Queues `notice` to one phone number that is not (or no longer) an account's, such as the number
/// a member just moved away from.
pub async fn queue_to_number(db: &impl ConnectionTrait, keys: &Sealer, phone: &str, notice: &str) -> AppResult<()> {
    let row = sms_outbox::notice_row(keys, phone, &sms_text(notice), None, Utc::now())?;
    entity::sms_outbox::Entity::insert(row).exec_without_returning(db).await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_sms_carries_at_most_the_first_120_characters_and_says_it_was_cut() {
        let short = "密码已修改 / password changed";
        assert_eq!(sms_text(short), short);
        let exactly: String = "字".repeat(SMS_CHARS);
        assert_eq!(sms_text(&exactly), exactly);
        let long: String = "字".repeat(SMS_CHARS + 1);
        let sent = sms_text(&long);
        assert!(sent.starts_with(&"字".repeat(SMS_CHARS)));
        assert_eq!(sent.chars().filter(|c| *c == '字').count(), SMS_CHARS);
        assert!(sent.ends_with("… (ecer)"), "{sent}");
    }
}
