//! Bearer tokens: an admin token (written into the admin kubeconfig) and tokens scoped to one
//! namespace, for CI pipelines. Tokens are stored hashed (SHA-256) in the `tokens` table of
//! `state.db`, so `skiff token create` works whether or not the daemon runs; the server looks a
//! token up again when it does not know it yet.

use std::collections::HashMap;
use std::path::Path;
use std::sync::Mutex;

use rusqlite::{params, Connection};
use sha2::{Digest, Sha256};

/// Who a request is.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Identity {
    /// The token's id (shown by `skiff token list`).
    pub id: String,
    /// `None` for the admin; `Some(ns)` for a token limited to one namespace, or a
    /// ServiceAccount's namespace.
    pub namespace: Option<String>,
    /// A ServiceAccount token (`id` is the account's name): its rights are what RBAC grants
    /// (`rbac.rs`), not the namespace's.
    pub service_account: bool,
}

impl Identity {
    /// The user name Kubernetes would show.
    pub fn user(&self) -> String {
        match &self.namespace {
            None => "system:admin".into(),
            Some(ns) if self.service_account => format!("system:serviceaccount:{ns}:{}", self.id),
            Some(ns) => format!("system:serviceaccount:{ns}:{}", self.id),
        }
    }
}

/// A stored token's description.
#[derive(Clone, Debug)]
pub struct TokenInfo {
    /// Id.
    pub id: String,
    /// Scope.
    pub namespace: Option<String>,
    /// When it was made.
    pub created: String,
}

fn hash(token: &str) -> String {
    hex::encode(Sha256::digest(token.as_bytes()))
}

fn random_hex(bytes: usize) -> String {
    let v: Vec<u8> = (0..bytes).map(|_| rand::random::<u8>()).collect();
    hex::encode(v)
}

/// The token table could not be read or written.
#[derive(Debug, thiserror::Error)]
pub enum TokenError {
    /// The database failed.
    #[error("the token table: {0}")]
    Database(#[from] rusqlite::Error),
    /// The store's schema could not be brought to this version (or is newer).
    #[error("the token table: {0}")]
    Schema(#[from] crate::model::store::StoreError),
}

/// The token table.
pub struct Tokens {
    conn: Mutex<Connection>,
    cache: Mutex<HashMap<String, Option<Identity>>>,
}

impl Tokens {
    /// Opens the table in `<data-dir>/state.db`.
    pub fn open(data_dir: &Path) -> Result<Self, TokenError> {
        let mut conn = Connection::open(data_dir.join("state.db"))?;
        conn.busy_timeout(std::time::Duration::from_secs(10))?;
        // The table is the store's (schema version 1): make or migrate it, refuse a newer one.
        crate::model::store::migrate(&mut conn)?;
        Ok(Tokens {
            conn: Mutex::new(conn),
            cache: Mutex::new(HashMap::new()),
        })
    }

    /// Creates a token; returns (id, token). The token is shown once and never stored in clear.
    pub fn create(
        &self,
        namespace: Option<&str>,
        id: Option<&str>,
    ) -> Result<(String, String), TokenError> {
        let id = id
            .map(String::from)
            .unwrap_or_else(|| format!("{}-{}", namespace.unwrap_or("admin"), &random_hex(3)));
        let token = format!("skiff.{}", random_hex(24));
        self.conn
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .execute(
                "INSERT INTO tokens (hash, id, namespace, created) VALUES (?1, ?2, ?3, ?4)",
                params![
                    hash(&token),
                    id,
                    namespace,
                    crate::model::store::now_rfc3339()
                ],
            )?;
        Ok((id, token))
    }

    /// Lists tokens (never their secrets).
    pub fn list(&self) -> Result<Vec<TokenInfo>, TokenError> {
        let conn = self.conn.lock().unwrap_or_else(|p| p.into_inner());
        let mut stmt =
            conn.prepare("SELECT id, namespace, created FROM tokens ORDER BY created")?;
        let rows = stmt.query_map([], |r| {
            Ok(TokenInfo {
                id: r.get(0)?,
                namespace: r.get(1)?,
                created: r.get(2)?,
            })
        })?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    /// Revokes a token by id. Returns whether it existed.
    pub fn revoke(&self, id: &str) -> Result<bool, TokenError> {
        let n = self
            .conn
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .execute("DELETE FROM tokens WHERE id = ?1", params![id])?;
        self.cache.lock().unwrap_or_else(|p| p.into_inner()).clear();
        Ok(n > 0)
    }

    /// Who a bearer token is, if anyone. Unknown tokens are looked up in the database (a token
    /// made by the CLI while the server runs); known answers are cached briefly.
    pub fn authenticate(&self, token: &str) -> Option<Identity> {
        let h = hash(token);
        if let Some(Some(id)) = self.cache.lock().unwrap_or_else(|p| p.into_inner()).get(&h) {
            return Some(id.clone());
        }
        let conn = self.conn.lock().unwrap_or_else(|p| p.into_inner());
        let found = conn
            .query_row(
                "SELECT id, namespace FROM tokens WHERE hash = ?1",
                params![h],
                |r| {
                    Ok(Identity {
                        id: r.get(0)?,
                        namespace: r.get(1)?,
                        service_account: false,
                    })
                },
            )
            .ok();
        if let Some(id) = &found {
            self.cache
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .insert(h, Some(id.clone()));
        }
        found
    }

    /// Forgets cached answers (after a revocation by another process, within a few seconds).
    pub fn forget(&self) {
        self.cache.lock().unwrap_or_else(|p| p.into_inner()).clear();
    }
}
