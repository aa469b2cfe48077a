//! Appending to users' event streams in cursor order.
//!
//! A subscriber resumes with "everything after id C", which is only gap-free if no row with a smaller
//! id can become visible after a larger one. Ids come from a global sequence, so two transactions could
//! commit out of order; taking a per-user append lock before inserting makes commit order equal id
//! order within each user's stream. PostgreSQL: a transaction-scoped advisory lock per user.
//! SQLite: one write lock per database already serialises writers, and a first write takes it.

use sea_orm::{ConnectionTrait, DbBackend, Statement};

use crate::error::AppResult;

/// Advisory-lock key space of user streams (high bits), so they never collide with other locks.
const USER_STREAM_LOCKS: i64 = 1 << 56;

/// Locks the streams of `users` for the rest of the transaction, in id order so that two writers
/// locking overlapping sets cannot deadlock. Call before inserting the rows that will be published.
pub async fn lock_users<C: ConnectionTrait>(txn: &C, users: &[i64]) -> AppResult<()> {
    let mut ids = users.to_vec();
    ids.sort_unstable();
    ids.dedup();
    match txn.get_database_backend() {
        DbBackend::Postgres if !ids.is_empty() => {
            // One round trip for all of them. With ORDER BY, PostgreSQL evaluates the volatile
            // lock calls of the select list after the sort, so they are taken in id order.
            let rows = (1..=ids.len()).map(|i| format!("(${i}::bigint)")).collect::<Vec<_>>().join(", ");
            txn.execute_raw(Statement::from_sql_and_values(
                DbBackend::Postgres,
                format!(
                    "SELECT pg_advisory_xact_lock({USER_STREAM_LOCKS} | k) FROM (VALUES {rows}) AS t(k) ORDER BY k"
                ),
                ids.iter().map(|&id| id.into()),
            ))
            .await?;
        }
        DbBackend::Postgres => {}
        backend => {
            // Any write statement takes SQLite's database write lock, even one that matches nothing.
            if let Some(first) = ids.first() {
                txn.execute_raw(Statement::from_sql_and_values(
                    backend,
                    "UPDATE users SET id = id WHERE id = ?",
                    [(*first).into()],
                ))
                .await?;
            }
        }
    }
    Ok(())
}
