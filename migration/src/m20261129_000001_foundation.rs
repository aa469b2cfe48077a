//! Accounts, sessions, boards, posts, comments and the social graph.
//!
//! Ids are 64-bit auto-increment keys: lists page by keyset on `id`, which stays stable while new rows
//! arrive. Counters (likes, comments, followers) live on the row they count and change in the same
//! transaction as the fact they count, so a list never needs a `COUNT(*)` per item.

use sea_orm_migration::prelude::*;

#[derive(DeriveMigrationName)]
pub struct Migration;

fn id<T: IntoIden>(col: T) -> ColumnDef {
    ColumnDef::new(col).big_integer().not_null().auto_increment().primary_key().to_owned()
}

fn fk<T: IntoIden>(col: T) -> ColumnDef {
    ColumnDef::new(col).big_integer().not_null().to_owned()
}

fn counter<T: IntoIden>(col: T) -> ColumnDef {
    ColumnDef::new(col).big_integer().not_null().default(0).to_owned()
}

fn created_at() -> ColumnDef {
    ColumnDef::new(Alias::new("created_at")).timestamp_with_time_zone().not_null().to_owned()
}

fn index(table: impl IntoIden, name: &str, cols: &[&str]) -> IndexCreateStatement {
    let mut idx = Index::create();
    idx.name(name).table(table);
    for c in cols {
        idx.col(Alias::new(*c));
    }
    idx.to_owned()
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table(Users::Table)
                    .col(id(Users::Id))
                    .col(ColumnDef::new(Users::Phone).string().null().unique_key())
                    .col(ColumnDef::new(Users::PasswordHash).string().null())
                    .col(ColumnDef::new(Users::AccountName).string().null().unique_key())
                    .col(ColumnDef::new(Users::Email).string().null())
                    .col(ColumnDef::new(Users::Nickname).string().not_null())
                    .col(ColumnDef::new(Users::AvatarUrl).string().null())
                    .col(ColumnDef::new(Users::Gender).string().not_null())
                    .col(ColumnDef::new(Users::Signature).string().null())
                    .col(ColumnDef::new(Users::Role).string().not_null())
                    .col(counter(Users::FollowerCount))
                    .col(counter(Users::FollowingCount))
                    .col(counter(Users::PostCount))
                    .col(created_at())
                    .col(ColumnDef::new(Users::UpdatedAt).timestamp_with_time_zone().not_null())
                    .col(ColumnDef::new(Users::DeletedAt).timestamp_with_time_zone().null())
                    .to_owned(),
            )
            .await?;

        manager
            .create_table(
                Table::create()
                    .table(Sessions::Table)
                    .col(id(Sessions::Id))
                    .col(fk(Sessions::UserId))
                    .col(ColumnDef::new(Sessions::TokenHash).string().not_null().unique_key())
                    .col(created_at())
                    .col(ColumnDef::new(Sessions::ExpiresAt).timestamp_with_time_zone().not_null())
                    .col(ColumnDef::new(Sessions::LastSeenAt).timestamp_with_time_zone().not_null())
                    .col(ColumnDef::new(Sessions::UserAgent).string().null())
                    .col(ColumnDef::new(Sessions::Ip).string().null())
                    .foreign_key(
                        ForeignKey::create()
                            .from(Sessions::Table, Sessions::UserId)
                            .to(Users::Table, Users::Id)
                            .on_delete(ForeignKeyAction::Cascade),
                    )
                    .to_owned(),
            )
            .await?;
        manager.create_index(index(Sessions::Table, "idx_sessions_user", &["user_id"])).await?;

        manager
            .create_table(
                Table::create()
                    .table(Boards::Table)
                    .col(id(Boards::Id))
                    .col(ColumnDef::new(Boards::Slug).string().not_null().unique_key())
                    .col(ColumnDef::new(Boards::Name).string().not_null())
                    .col(ColumnDef::new(Boards::Description).string().not_null())
                    .col(ColumnDef::new(Boards::CreatedBy).big_integer().null())
                    .col(counter(Boards::FollowerCount))
                    .col(counter(Boards::PostCount))
                    .col(created_at())
                    .foreign_key(
                        ForeignKey::create()
                            .from(Boards::Table, Boards::CreatedBy)
                            .to(Users::Table, Users::Id)
                            .on_delete(ForeignKeyAction::SetNull),
                    )
                    .to_owned(),
            )
            .await?;
        manager.create_index(index(Boards::Table, "idx_boards_created_by", &["created_by"])).await?;

        manager
            .create_table(
                Table::create()
                    .table(Posts::Table)
                    .col(id(Posts::Id))
                    .col(fk(Posts::BoardId))
                    .col(fk(Posts::AuthorId))
                    .col(ColumnDef::new(Posts::Title).string().not_null())
                    .col(ColumnDef::new(Posts::Body).text().not_null())
                    .col(ColumnDef::new(Posts::ImageUrls).json().not_null())
                    .col(counter(Posts::LikeCount))
                    .col(counter(Posts::CommentCount))
                    .col(counter(Posts::FavoriteCount))
                    .col(ColumnDef::new(Posts::HotScore).double().not_null())
                    .col(created_at())
                    .col(ColumnDef::new(Posts::UpdatedAt).timestamp_with_time_zone().not_null())
                    .col(ColumnDef::new(Posts::DeletedAt).timestamp_with_time_zone().null())
                    .foreign_key(
                        ForeignKey::create()
                            .from(Posts::Table, Posts::BoardId)
                            .to(Boards::Table, Boards::Id)
                            .on_delete(ForeignKeyAction::Cascade),
                    )
                    .foreign_key(
                        ForeignKey::create()
                            .from(Posts::Table, Posts::AuthorId)
                            .to(Users::Table, Users::Id)
                            .on_delete(ForeignKeyAction::Cascade),
                    )
                    .to_owned(),
            )
            .await?;
        // The feed orders: newest first (globally, per board, per author) and hottest first.
        manager.create_index(index(Posts::Table, "idx_posts_board_id", &["board_id", "id"])).await?;
        manager.create_index(index(Posts::Table, "idx_posts_author_id", &["author_id", "id"])).await?;
        manager.create_index(index(Posts::Table, "idx_posts_hot", &["hot_score", "id"])).await?;
        manager.create_index(index(Posts::Table, "idx_posts_board_hot", &["board_id", "hot_score", "id"])).await?;

        manager
            .create_table(
                Table::create()
                    .table(Comments::Table)
                    .col(id(Comments::Id))
                    .col(fk(Comments::PostId))
                    .col(fk(Comments::AuthorId))
                    .col(ColumnDef::new(Comments::ParentId).big_integer().null())
                    .col(ColumnDef::new(Comments::Body).text().not_null())
                    .col(counter(Comments::LikeCount))
                    .col(counter(Comments::ReplyCount))
                    .col(created_at())
                    .col(ColumnDef::new(Comments::DeletedAt).timestamp_with_time_zone().null())
                    .foreign_key(
                        ForeignKey::create()
                            .from(Comments::Table, Comments::PostId)
                            .to(Posts::Table, Posts::Id)
                            .on_delete(ForeignKeyAction::Cascade),
                    )
                    .foreign_key(
                        ForeignKey::create()
                            .from(Comments::Table, Comments::AuthorId)
                            .to(Users::Table, Users::Id)
                            .on_delete(ForeignKeyAction::Cascade),
                    )
                    .foreign_key(
                        ForeignKey::create()
                            .from(Comments::Table, Comments::ParentId)
                            .to(Comments::Table, Comments::Id)
                            .on_delete(ForeignKeyAction::Cascade),
                    )
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(index(Comments::Table, "idx_comments_post_parent", &["post_id", "parent_id", "id"]))
            .await?;
        manager.create_index(index(Comments::Table, "idx_comments_parent", &["parent_id", "id"])).await?;
        manager.create_index(index(Comments::Table, "idx_comments_author", &["author_id", "id"])).await?;

        // Edge tables: one row per (actor, target), with their own id so "my favourites" and
        // "followers" page by keyset in the order the edges were made.
        for edge in EDGES {
            manager
                .create_table(
                    Table::create()
                        .table(Alias::new(edge.table))
                        .col(id(Alias::new("id")))
                        .col(fk(Alias::new(edge.actor)))
                        .col(fk(Alias::new(edge.target)))
                        .col(created_at())
                        .foreign_key(
                            ForeignKey::create()
                                .from(Alias::new(edge.table), Alias::new(edge.actor))
                                .to(Users::Table, Users::Id)
                                .on_delete(ForeignKeyAction::Cascade),
                        )
                        .foreign_key(
                            ForeignKey::create()
                                .from(Alias::new(edge.table), Alias::new(edge.target))
                                .to(Alias::new(edge.target_table), Alias::new("id"))
                                .on_delete(ForeignKeyAction::Cascade),
                        )
                        .to_owned(),
                )
                .await?;
            let mut unique =
                index(Alias::new(edge.table), &format!("uq_{}_pair", edge.table), &[edge.actor, edge.target]);
            manager.create_index(unique.unique().to_owned()).await?;
            manager
                .create_index(index(Alias::new(edge.table), &format!("idx_{}_actor", edge.table), &[edge.actor, "id"]))
                .await?;
            manager
                .create_index(index(
                    Alias::new(edge.table),
                    &format!("idx_{}_target", edge.table),
                    &[edge.target, "id"],
                ))
                .await?;
        }
        Ok(())
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        for edge in EDGES.iter().rev() {
            manager.drop_table(Table::drop().table(Alias::new(edge.table)).to_owned()).await?;
        }
        manager.drop_table(Table::drop().table(Comments::Table).to_owned()).await?;
        manager.drop_table(Table::drop().table(Posts::Table).to_owned()).await?;
        manager.drop_table(Table::drop().table(Boards::Table).to_owned()).await?;
        manager.drop_table(Table::drop().table(Sessions::Table).to_owned()).await?;
        manager.drop_table(Table::drop().table(Users::Table).to_owned()).await?;
        Ok(())
    }
}

struct Edge {
    table: &'static str,
    actor: &'static str,
    target: &'static str,
    target_table: &'static str,
}

const EDGES: [Edge; 5] = [
    Edge { table: "post_likes", actor: "user_id", target: "post_id", target_table: "posts" },
    Edge { table: "comment_likes", actor: "user_id", target: "comment_id", target_table: "comments" },
    Edge { table: "favorites", actor: "user_id", target: "post_id", target_table: "posts" },
    Edge { table: "user_follows", actor: "follower_id", target: "followee_id", target_table: "users" },
    Edge { table: "board_follows", actor: "user_id", target: "board_id", target_table: "boards" },
];

#[derive(DeriveIden)]
enum Users {
    Table,
    Id,
    Phone,
    PasswordHash,
    AccountName,
    Email,
    Nickname,
    AvatarUrl,
    Gender,
    Signature,
    Role,
    FollowerCount,
    FollowingCount,
    PostCount,
    UpdatedAt,
    DeletedAt,
}

#[derive(DeriveIden)]
enum Sessions {
    Table,
    Id,
    UserId,
    TokenHash,
    ExpiresAt,
    LastSeenAt,
    UserAgent,
    Ip,
}

#[derive(DeriveIden)]
enum Boards {
    Table,
    Id,
    Slug,
    Name,
    Description,
    CreatedBy,
    FollowerCount,
    PostCount,
}

#[derive(DeriveIden)]
enum Posts {
    Table,
    Id,
    BoardId,
    AuthorId,
    Title,
    Body,
    ImageUrls,
    LikeCount,
    CommentCount,
    FavoriteCount,
    HotScore,
    UpdatedAt,
    DeletedAt,
}

#[derive(DeriveIden)]
enum Comments {
    Table,
    Id,
    PostId,
    AuthorId,
    ParentId,
    Body,
    LikeCount,
    ReplyCount,
    DeletedAt,
}
