//! The store as the tasks of one process share it: the writer behind one mutex, and a
//! read-only connection of its own for what only reads (`/metrics`, `/readyz`), so a scrape
//! never waits on a page commit (WAL lets it read meanwhile). Both are used off the async
//! workers: a page's transaction is milliseconds of blocking I/O that must not stall other
//! runs' HTTP.

use super::{Store, StoreError};
use std::future::Future;
use std::sync::{Arc, Mutex};

/// The writer connection, shared by every task of the process. SQLite has one writer at a
/// time anyway; the mutex makes that explicit and keeps each page's transaction whole.
pub type SharedStore = Arc<Mutex<Store>>;

/// Runs `f` on the writer off the async workers.
pub async fn with_store<T, F>(store: &SharedStore, f: F) -> Result<T, StoreError>
where
    T: Send + 'static,
    F: FnOnce(&mut Store) -> Result<T, StoreError> + Send + 'static,
{
    start_store(store, f).await
}

/// [`with_store`], but `f` starts at once and the returned future only collects its result,
/// so the caller can do other work (fetch the next page) meanwhile. Dropping the future does
/// not cancel `f`.
pub fn start_store<T, F>(
    store: &SharedStore,
    f: F,
) -> impl Future<Output = Result<T, StoreError>> + Send
where
    T: Send + 'static,
    F: FnOnce(&mut Store) -> Result<T, StoreError> + Send + 'static,
{
    let store = store.clone();
    let task = tokio::task::spawn_blocking(move || {
        // A panic inside an earlier call rolled its transaction back: the connection is
        // fine, as everywhere else the store mutex is taken.
        let mut guard = store.lock().unwrap_or_else(|e| e.into_inner());
        f(&mut guard)
    });
    async move {
        task.await
            .map_err(|e| StoreError::Invalid(format!("store task failed: {e}")))?
    }
}

/// The read-only connection, shared.
#[derive(Clone)]
pub struct Reader(Arc<Mutex<Store>>);

impl Reader {
    /// `store` should be opened with [`Store::open_read_only`].
    pub fn new(store: Store) -> Reader {
        Reader(Arc::new(Mutex::new(store)))
    }

    /// Runs `f` on the read-only connection, off the async workers.
    pub async fn read<T, F>(&self, f: F) -> Result<T, StoreError>
    where
        T: Send + 'static,
        F: FnOnce(&Store) -> Result<T, StoreError> + Send + 'static,
    {
        let reader = self.0.clone();
        tokio::task::spawn_blocking(move || {
            let guard = reader.lock().unwrap_or_else(|e| e.into_inner());
            f(&guard)
        })
        .await
        .map_err(|e| StoreError::Invalid(format!("store task failed: {e}")))?
    }
}
