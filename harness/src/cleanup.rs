//! Last-resort cleanup: what a run must undo if it is interrupted (Ctrl-C, SIGTERM).
//!
//! Providers register an undo action as soon as they start creating things, and remove
//! it after a normal teardown. The signal handler runs whatever is still registered.

use std::sync::{Arc, Mutex, Once, RwLock};

use crate::error::{HarnessError, Result};

type Undo = Arc<dyn Fn() + Send + Sync>;

static REGISTERED: Mutex<Vec<(String, Undo)>> = Mutex::new(Vec::new());
static HANDLER: Once = Once::new();
/// True once an interrupt is being handled; creations hold it for reading.
static INTERRUPTED: RwLock<bool> = RwLock::new(false);

/// Runs a short creation step (a namespace, a link) unless the run is being interrupted.
/// An interrupt waits for steps in flight, so what they made is removed too, and refuses
/// later ones: nothing is created after the cleanup has looked.
pub fn guard_creation<T>(create: impl FnOnce() -> Result<T>) -> Result<T> {
    let interrupted = INTERRUPTED.read().unwrap_or_else(|e| e.into_inner());
    if *interrupted {
        return Err(HarnessError::Interrupted);
    }
    create()
}

/// Registers `undo` under `key`; it runs if the process is interrupted before [`unregister`].
pub fn register(key: &str, undo: impl Fn() + Send + Sync + 'static) {
    install_signal_handler();
    REGISTERED.lock().unwrap_or_else(|e| e.into_inner()).push((key.to_owned(), Arc::new(undo)));
}

pub fn unregister(key: &str) {
    REGISTERED.lock().unwrap_or_else(|e| e.into_inner()).retain(|(k, _)| k != key);
}

/// When an interrupt is being handled, never returns: the handler removes what the run
/// created and exits with 130. A run whose scenarios end because the cleanup pulled their
/// cluster away must not exit first, with another status and the cleanup half done.
pub fn wait_if_interrupted() {
    if *INTERRUPTED.read().unwrap_or_else(|e| e.into_inner()) {
        loop {
            std::thread::park();
        }
    }
}

/// Runs and forgets every registered undo action.
pub fn run_all() {
    let actions: Vec<_> = std::mem::take(&mut *REGISTERED.lock().unwrap_or_else(|e| e.into_inner()));
    for (key, undo) in actions {
        tracing::info!("cleaning up {key}");
        undo();
    }
}

fn install_signal_handler() {
    HANDLER.call_once(|| {
        let installed = ctrlc::set_handler(|| {
            tracing::warn!("interrupted, removing what this run created");
            *INTERRUPTED.write().unwrap_or_else(|e| e.into_inner()) = true;
            run_all();
            std::process::exit(130);
        });
        if let Err(e) = installed {
            tracing::warn!("could not install the Ctrl-C handler ({e}); an interrupted run needs `cargo xtask gc`");
        }
    });
}
