//! One shutdown for every worker (mini-redis' shape). `daemon::run` takes a future
//! that resolves when the daemon must stop: [`signal`] (SIGTERM or SIGINT) in the
//! binary, any future in tests. When it resolves, the daemon fires its [`Trigger`];
//! every worker holds a clone of the [`Shutdown`] token: async tasks select on
//! [`Shutdown::wait`], threads check [`Shutdown::is_set`] between units of work. The
//! daemon then awaits them in one place (`daemon.rs`, `finish`), in a documented order.

use tokio::sync::watch;

/// The firing side, owned by the daemon.
#[derive(Debug)]
pub struct Trigger(watch::Sender<bool>);

/// The token every worker holds.
#[derive(Debug, Clone)]
pub struct Shutdown(Option<watch::Receiver<bool>>);

/// A trigger and the token it fires.
pub fn channel() -> (Trigger, Shutdown) {
    let (tx, rx) = watch::channel(false);
    (Trigger(tx), Shutdown(Some(rx)))
}

impl Trigger {
    pub fn fire(&self) {
        self.0.send_replace(true);
    }
}

impl Shutdown {
    /// A token that never fires (work that runs outside the daemon, e.g. a replay).
    pub fn never() -> Shutdown {
        Shutdown(None)
    }

    /// Whether the shutdown has begun (or its trigger is gone).
    pub fn is_set(&self) -> bool {
        self.0
            .as_ref()
            .is_some_and(|rx| *rx.borrow() || rx.has_changed().is_err())
    }

    /// Resolves when the shutdown begins (at once if it has).
    pub async fn wait(&mut self) {
        match &mut self.0 {
            // A dropped trigger counts as fired: nobody is left to fire it.
            Some(rx) => {
                let _ = rx.wait_for(|stop| *stop).await;
            }
            None => std::future::pending().await,
        }
    }
}

/// The binary's shutdown future: resolves on the first SIGTERM or SIGINT. Both are
/// caught from the moment this returns, not from the future's first poll: call it
/// first thing, inside the runtime. Until then a signal meets the disposition the
/// process inherited, and an inherited "ignore" loses it: a `systemctl stop` right
/// after a start would then wait for the stop timeout and a SIGKILL.
pub fn signal() -> std::io::Result<impl std::future::Future<Output = ()>> {
    use tokio::signal::unix::{signal, SignalKind};
    let mut term = signal(SignalKind::terminate())?;
    let mut int = signal(SignalKind::interrupt())?;
    Ok(async move {
        tokio::select! {
            _ = term.recv() => tracing::info!("SIGTERM received"),
            _ = int.recv() => tracing::info!("SIGINT received"),
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn every_clone_sees_the_one_trigger() {
        let (trigger, token) = channel();
        let mut a = token.clone();
        let b = token.clone();
        assert!(!b.is_set());
        trigger.fire();
        a.wait().await;
        assert!(b.is_set());
        assert!(!Shutdown::never().is_set());
    }
}
