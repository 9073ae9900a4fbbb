//! Process signals as async events: signal-hook's iterator runs on its own small thread and
//! feeds a tokio channel. (signal-hook-tokio would add a crate for the same few lines; a
//! thread also keeps working while the runtime is busy.) No policy here: callers decide
//! what a signal means.

use std::io;
use std::os::raw::c_int;

use signal_hook::iterator::{Handle, Signals};
use tokio::sync::mpsc;

/// Received signals, as numbers (`nix::sys::signal::Signal::try_from` names them).
/// Dropping it unregisters the handlers' thread.
pub struct SignalEvents {
    rx: mpsc::UnboundedReceiver<c_int>,
    handle: Handle,
}

impl SignalEvents {
    /// Starts listening for `signals`. Their default action (e.g. terminating on SIGTERM)
    /// no longer applies while this lives.
    pub fn listen(signals: &[c_int]) -> io::Result<SignalEvents> {
        let mut iter = Signals::new(signals)?;
        let handle = iter.handle();
        let (tx, rx) = mpsc::unbounded_channel();
        std::thread::Builder::new()
            .name("deskd-signals".into())
            .spawn(move || {
                for signal in iter.forever() {
                    if tx.send(signal).is_err() {
                        break;
                    }
                }
            })?;
        Ok(SignalEvents { rx, handle })
    }

    /// The next signal; `None` once closed.
    pub async fn recv(&mut self) -> Option<c_int> {
        self.rx.recv().await
    }
}

impl Drop for SignalEvents {
    fn drop(&mut self) {
        self.handle.close();
    }
}
