//! What the rebuild hands to the writer: every file and directory it can offer, where it goes
//! in the output tree, how it was found and how sure that is.

use crate::block::Source;
use serde::Serialize;

/// How an item came back.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum State {
    /// Listed by its directory on a readable volume.
    Live,
    /// FD intact, directory entry lost (`lost+found/`).
    Orphaned,
    /// Unlinked and freed; content found by other means, or not at all.
    Deleted,
    /// Listed by its directory, but its FD is unreadable (corrupt or on a bad sector): name
    /// from the entry, content found by other means, or not at all.
    Damaged,
    /// Belongs to a file system that was formatted over (`previous/`).
    Previous,
    /// Content found by its signature, without an FD (`carved/`).
    Carved,
    /// Written by us from what is known (a lost descriptor or .vmx).
    Regenerated,
}

/// How sure the item is what it claims to be.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Confidence {
    Low,
    Medium,
    High,
}

/// File, directory or symbolic link.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Kind {
    File,
    Dir,
    Symlink,
}

/// One recoverable (or reported) entry.
#[derive(Clone)]
pub struct Item {
    /// Output path: "/"-separated components under the output root (`volumes/LABEL/vm/x.vmx`);
    /// components are sanitized when written.
    pub path: Vec<String>,
    pub kind: Kind,
    pub state: State,
    /// The datastore path it had, when known ("/vm/x.vmx").
    pub original: Option<String>,
    /// Volume label (or a made-up name) and FD address, when there is an FD.
    pub volume: String,
    pub fd: Option<u32>,
    pub size: u64,
    pub mtime: u32,
    /// How it was found (one line).
    pub method: String,
    pub confidence: Confidence,
    /// The content, for files that have any.
    pub content: Option<Source>,
    /// What could not be recovered, and why.
    pub missing: Vec<String>,
}

impl Item {
    /// The output path as one string.
    pub fn out_path(&self) -> String {
        self.path.join("/")
    }
}
