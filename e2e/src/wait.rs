//! Waiting for a condition with a deadline. The only way the lab and its tests wait: never a
//! fixed sleep, always "check, and give up with what was last seen".

use std::fmt::Display;
use std::future::Future;
use std::time::{Duration, Instant};

use crate::error::{LabError, Result};

const INTERVAL: Duration = Duration::from_millis(100);

/// Calls `check` until it returns `Ok(Ok(v))`; `Ok(Err(seen))` means "not yet" (and `seen`
/// goes into the timeout message); `Err` stops at once.
pub fn poll_blocking<T>(
    what: &str,
    within: Duration,
    mut check: impl FnMut() -> Result<Result<T, String>>,
) -> Result<T> {
    let deadline = Instant::now() + within;
    loop {
        let last = match check()? {
            Ok(v) => return Ok(v),
            Err(seen) => seen,
        };
        if Instant::now() >= deadline {
            return Err(LabError::Timeout {
                what: what.to_string(),
                seconds: within.as_secs(),
                last: Some(last),
            });
        }
        std::thread::sleep(INTERVAL);
    }
}

/// Awaits `check` until it returns `Ok`; every `Err` means "not yet" and the last one is
/// reported if the deadline passes.
pub async fn poll<T, E, F, Fut>(what: &str, within: Duration, mut check: F) -> Result<T>
where
    E: Display,
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, E>>,
{
    let deadline = Instant::now() + within;
    loop {
        let last = match check().await {
            Ok(v) => return Ok(v),
            Err(e) => e.to_string(),
        };
        if Instant::now() >= deadline {
            return Err(LabError::Timeout {
                what: what.to_string(),
                seconds: within.as_secs(),
                last: Some(last),
            });
        }
        tokio::time::sleep(INTERVAL).await;
    }
}

/// Checks that `check` keeps returning `Ok` for the whole of `during`; the first `Err` is
/// returned (for "the route never leaves the table" kinds of assertions).
pub async fn holds<E, F, Fut>(what: &str, during: Duration, mut check: F) -> Result<()>
where
    E: Display,
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<(), E>>,
{
    let end = Instant::now() + during;
    while Instant::now() < end {
        if let Err(e) = check().await {
            return Err(LabError::Usage(format!("{what} stopped holding: {e}")));
        }
        tokio::time::sleep(INTERVAL).await;
    }
    Ok(())
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn blocking_poll_returns_the_value_or_the_last_seen_state() {
        let mut n = 0;
        let v = poll_blocking("three calls", Duration::from_secs(5), || {
            n += 1;
            Ok(if n == 3 { Ok(n) } else { Err(format!("n={n}")) })
        });
        assert_eq!(v.unwrap(), 3);
        let err = poll_blocking::<()>("never", Duration::ZERO, || Ok(Err("still no".into())))
            .unwrap_err()
            .to_string();
        assert!(err.contains("never") && err.contains("still no"), "{err}");
    }

    #[tokio::test]
    async fn async_poll_reports_the_last_error() {
        let err = poll::<(), _, _, _>("a thing", Duration::ZERO, || async { Err("nope") })
            .await
            .unwrap_err()
            .to_string();
        assert!(err.contains("a thing") && err.contains("nope"), "{err}");
    }
}
