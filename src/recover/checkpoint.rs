//! Scan checkpoints written beside the scan, not in its way. A checkpoint is three fsyncs (the
//! findings, the new `scan.json`, its folder); when the state directory shares a disk with the
//! source (tests, benches, an admin with one disk), they queue behind the scan's reads, and done
//! inline they stall the classifier and then the reader for tens of milliseconds each time.
//! Here one thread makes them durable in order, while the scan goes on appending.

use super::error::RecoverError;
use super::index::{FINDINGS_FILE, ScanState};
use std::fs::File;
use std::path::{Path, PathBuf};
use std::sync::mpsc::{SyncSender, TrySendError, sync_channel};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;

/// The background writer of checkpoints; started on first use.
#[derive(Default)]
pub(super) struct Checkpointer {
    tx: Option<SyncSender<ScanState>>,
    handle: Option<JoinHandle<()>>,
    failed: Arc<Mutex<Option<RecoverError>>>,
}

impl Checkpointer {
    /// Hand over `state`, whose findings are all written (not yet durable) to `findings`. When the
    /// previous checkpoint is still being written this one is skipped: the next one supersedes it.
    pub(super) fn offer(&mut self, dir: &Path, findings: &File, state: &ScanState) -> Result<(), RecoverError> {
        self.check()?;
        if self.tx.is_none() {
            let file = findings.try_clone().map_err(|e| RecoverError::state(dir.join(FINDINGS_FILE), e))?;
            let (tx, rx) = sync_channel::<ScanState>(0);
            let failed = Arc::clone(&self.failed);
            let dir: PathBuf = dir.to_path_buf();
            self.handle = Some(std::thread::spawn(move || {
                for s in rx {
                    // Findings durable first, then the index that counts them.
                    let r = file
                        .sync_data()
                        .map_err(|e| RecoverError::state(dir.join(FINDINGS_FILE), e))
                        .and_then(|()| s.save(&dir));
                    if let Err(e) = r {
                        *failed.lock().unwrap_or_else(|p| p.into_inner()) = Some(e);
                        return;
                    }
                }
            }));
            self.tx = Some(tx);
        }
        if let Some(tx) = &self.tx {
            match tx.try_send(state.clone()) {
                Ok(()) | Err(TrySendError::Full(_)) => {}
                Err(TrySendError::Disconnected(_)) => return self.finish(),
            }
        }
        Ok(())
    }

    /// Wait for the checkpoint in progress, if any, and stop the thread; its error, if any.
    pub(super) fn finish(&mut self) -> Result<(), RecoverError> {
        self.tx = None;
        if let Some(h) = self.handle.take() {
            let _ = h.join();
        }
        self.check()
    }

    fn check(&self) -> Result<(), RecoverError> {
        match self.failed.lock().unwrap_or_else(|p| p.into_inner()).take() {
            Some(e) => Err(e),
            None => Ok(()),
        }
    }
}

impl Drop for Checkpointer {
    fn drop(&mut self) {
        let _ = self.finish();
    }
}
