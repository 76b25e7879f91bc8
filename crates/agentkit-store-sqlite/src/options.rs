//! [`SqliteOptions`]: how [`crate::SqliteStore::open_with`] creates a database file.

use crate::error::OpenError;

/// How [`SqliteStore::open_with`](crate::SqliteStore::open_with) creates and opens a database.
/// [`SqliteStore::open`](crate::SqliteStore::open) uses the defaults.
///
/// ```
/// use agentkit_store_sqlite::{SqliteOptions, SqliteStore};
///
/// # #[tokio::main(flavor = "multi_thread", worker_threads = 2)]
/// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// # let dir = tempfile::tempdir()?;
/// // A host whose agents' turns matter more than workflow throughput.
/// let options = SqliteOptions::default().page_size(2048);
/// let store = SqliteStore::open_with(dir.path().join("agents.db"), options).await?;
/// # drop(store);
/// # Ok(()) }
/// ```
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct SqliteOptions {
    /// The page size of a **new** database file, in bytes: a power of two from 512 to 65,536.
    /// `None` (the default) keeps SQLite's 4,096. A file that already exists keeps the page
    /// size it was created with.
    ///
    /// Every commit writes each page it touches to the write-ahead log whole. An agent turn's
    /// commits touch a few small rows in each of several tables, so smaller pages make them
    /// cheaper: on the durable turn bench (BENCHMARKS.md, issue 11) 2,048-byte pages took a
    /// median 284 µs a turn against 362 µs. A workflow worker's group commit writes many rows
    /// per transaction and is slower with them (worker × 16: 23k/18k against 28k/23k steps/s),
    /// and a knowledge chunk's row spills into an overflow page (its search measured no
    /// slower).
    pub page_size: Option<u32>,
}

impl SqliteOptions {
    /// Sets [`page_size`](Self::page_size).
    pub fn page_size(mut self, bytes: u32) -> Self {
        self.page_size = Some(bytes);
        self
    }

    /// Refuses a page size SQLite does not have (it would silently keep its default).
    pub(crate) fn check(&self) -> Result<(), OpenError> {
        match self.page_size {
            Some(bytes) if !(512..=65_536).contains(&bytes) || !bytes.is_power_of_two() => {
                Err(OpenError::Database {
                    message: format!("page_size {bytes} is not a power of two from 512 to 65536"),
                    retryable: false,
                    source: None,
                })
            }
            _ => Ok(()),
        }
    }
}
