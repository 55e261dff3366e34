//! Running the async core from blocking code.

use core::future::Future;
use core::pin::pin;
use core::task::{Context, Poll, Waker};

/// Runs `fut` to completion on the current thread, polling in a loop.
///
/// Meant for blocking drivers, whose futures are ready at once: every
/// [`crate::Flash`] and [`crate::PackageSource`] in this crate except
/// [`crate::AsyncNorFlashAdapter`] completes on its first poll. With a
/// driver that returns `Pending`, this spins; use a real executor then.
pub fn block_on<T>(fut: impl Future<Output = T>) -> T {
    let waker = Waker::noop();
    let mut cx = Context::from_waker(waker);
    let mut fut = pin!(fut);
    loop {
        if let Poll::Ready(v) = fut.as_mut().poll(&mut cx) {
            return v;
        }
    }
}
