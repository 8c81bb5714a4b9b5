//! Supervision of the re-authentication workers: [`supervise`] runs a worker and, when it panics, reports the panic
//! and starts a new one; [`AbortOnDrop`] ends a task with the handle that owns it.

/// Aborts the task when dropped (so a worker's helper tasks end with it).
pub(crate) struct AbortOnDrop(pub(crate) tokio::task::JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// Runs the task `make` builds; when it panics, calls `on_panic` with the panic message and runs a new one. Ends
/// when a task returns. Dropping (aborting) the supervisor aborts the running task.
pub(crate) async fn supervise<F, Fut>(mut make: F, on_panic: impl Fn(String))
where
    F: FnMut() -> Fut,
    Fut: Future<Output = ()> + Send + 'static,
{
    loop {
        let mut task = AbortOnDrop(tokio::spawn(make()));
        let outcome = (&mut task).await;
        match outcome {
            Ok(()) => return,
            Err(e) if e.is_panic() => {
                let panic = e.into_panic();
                let message = panic
                    .downcast_ref::<&str>()
                    .map(|s| (*s).to_owned())
                    .or_else(|| panic.downcast_ref::<String>().cloned())
                    .unwrap_or_else(|| "no message".to_owned());
                on_panic(message);
            }
            Err(_) => return,
        }
    }
}

impl Future for AbortOnDrop {
    type Output = Result<(), tokio::task::JoinError>;

    fn poll(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Self::Output> {
        std::pin::Pin::new(&mut self.0).poll(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicU32, Ordering};
    use std::sync::{Arc, Mutex};

    #[tokio::test]
    async fn a_panicking_worker_is_reported_and_restarted() {
        let runs = Arc::new(AtomicU32::new(0));
        let panics = Arc::new(Mutex::new(Vec::new()));
        let (r, p) = (runs.clone(), panics.clone());
        supervise(
            move || {
                let run = r.fetch_add(1, Ordering::SeqCst);
                async move {
                    assert!(run >= 2, "worker failure {run}");
                }
            },
            move |message| p.lock().unwrap_or_else(|e| e.into_inner()).push(message),
        )
        .await;
        assert_eq!(runs.load(Ordering::SeqCst), 3, "restarted after each panic");
        let panics = panics.lock().unwrap_or_else(|e| e.into_inner()).clone();
        assert_eq!(panics.len(), 2);
        assert!(panics[0].contains("worker failure 0"), "{panics:?}");
    }

    #[tokio::test]
    async fn aborting_the_supervisor_aborts_the_worker() {
        let (tx, mut rx) = tokio::sync::mpsc::channel::<()>(1);
        let supervisor = tokio::spawn(supervise(
            move || {
                let tx = tx.clone();
                async move {
                    // Holds the sender until aborted.
                    let _tx = tx;
                    std::future::pending::<()>().await;
                }
            },
            |_| {},
        ));
        tokio::task::yield_now().await;
        supervisor.abort();
        // The worker's sender is dropped only if the worker was aborted too.
        assert!(rx.recv().await.is_none());
    }
}
