//! Ctrl-C and SIGTERM, the one shutdown path of long-running commands.

use anyhow::Result;
use tokio::signal::unix::{signal, Signal, SignalKind};

/// Ctrl-C or SIGTERM.
pub struct Shutdown {
    interrupt: Signal,
    terminate: Signal,
}

impl Shutdown {
    pub fn listen() -> Result<Self> {
        Ok(Self { interrupt: signal(SignalKind::interrupt())?, terminate: signal(SignalKind::terminate())? })
    }

    pub async fn requested(&mut self) {
        tokio::select! {
            _ = self.interrupt.recv() => {}
            _ = self.terminate.recv() => {}
        }
    }
}
