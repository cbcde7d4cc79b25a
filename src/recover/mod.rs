//! Recovery engine: one sequential pass over the sources finds every surviving structure
//! (`scan`), the findings are kept in a resumable index next to the output (`index`), and
//! volumes, directory trees, orphaned, deleted and re-formatted files are rebuilt from them.
//!
//! The scan never interprets more than one sector-aligned position at a time (`classify`); what
//! the findings mean together is decided afterwards, from the index, without a second full read.

pub mod classify;
pub mod error;
pub mod finding;
pub mod index;
pub mod scan;

pub use error::RecoverError;
pub use finding::{Finding, What};
pub use index::{IndexedSource, ScanIndex};
pub use scan::{Progress, ScanOptions, ScanSummary, scan};
