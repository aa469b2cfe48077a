use sea_orm::entity::prelude::*;

/// A browser's or app's Web Push subscription (`PushSubscription.toJSON()`): where to send and the
/// keys to encrypt for. Belongs to the session that registered it: signing out ends it. One flag per
/// category the member wants pushed on this device.
#[derive(Clone, Debug, PartialEq, DeriveEntityModel)]
#[sea_orm(table_name = "push_subscriptions")]
pub struct Model {
    #[sea_orm(primary_key)]
    pub id: i64,
    pub user_id: i64,
    pub session_id: i64,
    /// The push service's capability URL for this device.
    #[sea_orm(unique)]
    pub endpoint: String,
    /// The device's P-256 public key, base64url (65-byte uncompressed point).
    pub p256dh: String,
    /// The device's authentication secret, base64url (16 bytes).
    pub auth: String,
    /// The VAPID public key the device subscribed with (`pushPublicKey` then): pushes signed with
    /// another key would be refused, so a key change ends the subscription.
    pub vapid_key: String,
    pub messages: bool,
    pub replies: bool,
    pub likes: bool,
    pub follows: bool,
    pub notices: bool,
    pub created_at: DateTimeUtc,
    /// The last time the push service accepted a message for it.
    pub delivered_at: Option<DateTimeUtc>,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
