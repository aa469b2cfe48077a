//! Private messages, notifications, blocks and live streams: everything the realtime layer pushes.
//!
//! Every pushable row carries an id that grows within its stream, and writers append under a per-stream
//! lock, so "everything after cursor C" read from these tables is exactly what a reconnecting client
//! missed. The broker only says that something new exists; these tables are the truth.

use sea_orm_migration::prelude::*;

#[derive(DeriveMigrationName)]
pub struct Migration;

fn a(name: &str) -> Alias {
    Alias::new(name)
}

fn id() -> ColumnDef {
    ColumnDef::new(a("id")).big_integer().not_null().auto_increment().primary_key().to_owned()
}

fn big(name: &str) -> ColumnDef {
    ColumnDef::new(a(name)).big_integer().not_null().to_owned()
}

fn big_null(name: &str) -> ColumnDef {
    ColumnDef::new(a(name)).big_integer().null().to_owned()
}

fn counter(name: &str) -> ColumnDef {
    ColumnDef::new(a(name)).big_integer().not_null().default(0).to_owned()
}

fn text(name: &str) -> ColumnDef {
    ColumnDef::new(a(name)).text().not_null().to_owned()
}

fn time(name: &str) -> ColumnDef {
    ColumnDef::new(a(name)).timestamp_with_time_zone().not_null().to_owned()
}

fn time_null(name: &str) -> ColumnDef {
    ColumnDef::new(a(name)).timestamp_with_time_zone().null().to_owned()
}

fn fk(table: &str, col: &str, target: &str, on_delete: ForeignKeyAction) -> ForeignKeyCreateStatement {
    ForeignKey::create().from(a(table), a(col)).to(a(target), a("id")).on_delete(on_delete).to_owned()
}

fn index(table: &str, name: &str, cols: &[&str], unique: bool) -> IndexCreateStatement {
    let mut idx = Index::create();
    idx.name(name).table(a(table));
    for c in cols {
        idx.col(a(c));
    }
    if unique {
        idx.unique();
    }
    idx.to_owned()
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        use ForeignKeyAction::{Cascade, SetNull};
        // A one-to-one conversation; `user_low` < `user_high` makes the pair unique in one index.
        manager
            .create_table(
                Table::create()
                    .table(a("conversations"))
                    .col(id())
                    .col(big("user_low"))
                    .col(big("user_high"))
                    .col(big_null("last_message_id"))
                    .col(time("created_at"))
                    .col(time("updated_at"))
                    .foreign_key(&mut fk("conversations", "user_low", "users", Cascade))
                    .foreign_key(&mut fk("conversations", "user_high", "users", Cascade))
                    .to_owned(),
            )
            .await?;
        manager.create_index(index("conversations", "ux_conversations_pair", &["user_low", "user_high"], true)).await?;
        manager.create_index(index("conversations", "idx_conversations_high", &["user_high"], false)).await?;
        // One row per participant: the inbox order (`last_message_id`) and the read marker.
        manager
            .create_table(
                Table::create()
                    .table(a("conversation_members"))
                    .col(id())
                    .col(big("conversation_id"))
                    .col(big("user_id"))
                    .col(big("peer_id"))
                    .col(counter("last_message_id"))
                    .col(counter("last_read_message_id"))
                    .col(time("created_at"))
                    .foreign_key(&mut fk("conversation_members", "conversation_id", "conversations", Cascade))
                    .foreign_key(&mut fk("conversation_members", "user_id", "users", Cascade))
                    .foreign_key(&mut fk("conversation_members", "peer_id", "users", Cascade))
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(index(
                "conversation_members",
                "ux_conversation_members",
                &["conversation_id", "user_id"],
                true,
            ))
            .await?;
        manager
            .create_index(index(
                "conversation_members",
                "idx_conversation_members_inbox",
                &["user_id", "last_message_id"],
                false,
            ))
            .await?;
        manager
            .create_table(
                Table::create()
                    .table(a("messages"))
                    .col(id())
                    .col(big("conversation_id"))
                    .col(big("sender_id"))
                    .col(text("body"))
                    .col(time("created_at"))
                    .foreign_key(&mut fk("messages", "conversation_id", "conversations", Cascade))
                    .foreign_key(&mut fk("messages", "sender_id", "users", Cascade))
                    .to_owned(),
            )
            .await?;
        manager.create_index(index("messages", "idx_messages_conversation", &["conversation_id", "id"], false)).await?;
        manager
            .create_table(
                Table::create()
                    .table(a("user_blocks"))
                    .col(id())
                    .col(big("blocker_id"))
                    .col(big("blocked_id"))
                    .col(time("created_at"))
                    .foreign_key(&mut fk("user_blocks", "blocker_id", "users", Cascade))
                    .foreign_key(&mut fk("user_blocks", "blocked_id", "users", Cascade))
                    .to_owned(),
            )
            .await?;
        manager.create_index(index("user_blocks", "ux_user_blocks", &["blocker_id", "blocked_id"], true)).await?;
        manager.create_index(index("user_blocks", "idx_user_blocks_blocked", &["blocked_id"], false)).await?;
        // `seq` orders a user's notifications; a coalesced notification (another like on the same
        // post) moves to a new, higher `seq`, so replay after a cursor picks it up again.
        manager
            .create_table(
                Table::create()
                    .table(a("notifications"))
                    .col(id())
                    .col(big("user_id"))
                    .col(big("seq"))
                    .col(ColumnDef::new(a("kind")).string().not_null())
                    .col(ColumnDef::new(a("group_key")).string().null())
                    .col(big_null("actor_id"))
                    .col(counter("actor_count"))
                    .col(big_null("post_id"))
                    .col(big_null("comment_id"))
                    .col(ColumnDef::new(a("body")).text().null())
                    .col(time_null("read_at"))
                    .col(time("created_at"))
                    .col(time("updated_at"))
                    .foreign_key(&mut fk("notifications", "user_id", "users", Cascade))
                    .foreign_key(&mut fk("notifications", "actor_id", "users", SetNull))
                    .foreign_key(&mut fk("notifications", "post_id", "posts", Cascade))
                    .foreign_key(&mut fk("notifications", "comment_id", "comments", Cascade))
                    .to_owned(),
            )
            .await?;
        manager.create_index(index("notifications", "ux_notifications_seq", &["user_id", "seq"], true)).await?;
        manager
            .create_index(index("notifications", "idx_notifications_group", &["user_id", "group_key"], false))
            .await?;
        manager
            .create_table(
                Table::create()
                    .table(a("notification_mutes"))
                    .col(id())
                    .col(big("user_id"))
                    .col(ColumnDef::new(a("category")).string().not_null())
                    .col(time("created_at"))
                    .foreign_key(&mut fk("notification_mutes", "user_id", "users", Cascade))
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(index("notification_mutes", "ux_notification_mutes", &["user_id", "category"], true))
            .await?;
        manager
            .create_table(
                Table::create()
                    .table(a("live_streams"))
                    .col(id())
                    .col(big("host_id"))
                    .col(big_null("board_id"))
                    .col(ColumnDef::new(a("title")).string().not_null())
                    .col(ColumnDef::new(a("status")).string().not_null())
                    .col(ColumnDef::new(a("ingest_key")).string().not_null().unique_key())
                    .col(counter("chat_seq"))
                    .col(time("created_at"))
                    .col(time_null("started_at"))
                    .col(time_null("ended_at"))
                    .foreign_key(&mut fk("live_streams", "host_id", "users", Cascade))
                    .foreign_key(&mut fk("live_streams", "board_id", "boards", SetNull))
                    .to_owned(),
            )
            .await?;
        manager.create_index(index("live_streams", "idx_live_streams_status", &["status", "id"], false)).await?;
        manager.create_index(index("live_streams", "idx_live_streams_host", &["host_id", "id"], false)).await?;
        // `seq` is contiguous per stream (taken from `live_streams.chat_seq` under its row lock), so a
        // viewer can tell a line the broker lost from one it was sent.
        manager
            .create_table(
                Table::create()
                    .table(a("live_chat_messages"))
                    .col(id())
                    .col(big("stream_id"))
                    .col(big("seq"))
                    .col(big("user_id"))
                    .col(text("body"))
                    .col(time("created_at"))
                    .foreign_key(&mut fk("live_chat_messages", "stream_id", "live_streams", Cascade))
                    .foreign_key(&mut fk("live_chat_messages", "user_id", "users", Cascade))
                    .to_owned(),
            )
            .await?;
        manager.create_index(index("live_chat_messages", "ux_live_chat_seq", &["stream_id", "seq"], true)).await?;
        Ok(())
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        for table in [
            "live_chat_messages",
            "live_streams",
            "notification_mutes",
            "notifications",
            "user_blocks",
            "messages",
            "conversation_members",
            "conversations",
        ] {
            manager.drop_table(Table::drop().table(a(table)).to_owned()).await?;
        }
        Ok(())
    }
}
