//! The open-loop scheduler.
//!
//! Operation `i` has an *intended* send time, `start + i / rate`, fixed in
//! advance whatever the system does. A pool of `concurrency` slots sends
//! them: when every slot is busy, due operations wait for one, and when
//! one frees up they go out at once, late. Each latency runs from the
//! intended time to completion, so the wait behind a slow system counts —
//! a closed loop (send the next request when the last answers) would send
//! less while the system stalls and never see that wait (*coordinated
//! omission*). Only this program's own lateness is left out: an operation
//! whose time comes while the run keeps up is measured from when the timer
//! fired (tokio's fires on whole milliseconds, up to 1.5 ms late, which
//! would otherwise be most of a sub-millisecond read).
//!
//! Without a rate the loop is closed: an operation is intended when a slot
//! frees up for it, which measures peak throughput, not latency under a
//! given load.

use super::report::{progress_line, Recorder};
use super::targets::Target;
use super::workload::Op;
use std::sync::{Arc, Mutex, PoisonError};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio::task::JoinSet;
use tokio::time::{sleep_until, Duration, Instant};

/// What to send: at most `ops` operations, or for `duration`; at `rate`
/// per second (open loop) or as fast as `concurrency` slots allow.
#[derive(Clone, Copy, Debug)]
pub struct Plan {
    pub rate: Option<f64>,
    pub ops: Option<u64>,
    pub duration: Option<Duration>,
    pub concurrency: usize,
}

impl Plan {
    fn intended(&self, start: Instant, i: u64) -> Option<Instant> {
        self.rate
            .map(|rate| start + Duration::from_secs_f64(i as f64 / rate))
    }

    /// How many operations the plan sends; `None` for a closed loop that
    /// runs for a duration.
    fn total(&self) -> Option<u64> {
        let scheduled = || Some((self.rate? * self.duration?.as_secs_f64()).round() as u64);
        self.ops.or_else(scheduled)
    }

    /// When an open loop stops sending operations still due: twice the
    /// planned time. A system that far behind would otherwise keep the run
    /// going for as long again as it is behind.
    fn give_up(&self, start: Instant) -> Option<Instant> {
        let rate = self.rate?;
        let span = match self.ops {
            Some(ops) => Duration::from_secs_f64(ops as f64 / rate),
            None => self.duration?,
        };
        Some(start + 2 * span)
    }

    /// Whether a closed loop has run its duration.
    fn closed_loop_over(&self, start: Instant) -> bool {
        self.rate.is_none() && self.duration.is_some_and(|d| start.elapsed() >= d)
    }
}

/// What a run measured.
pub struct Outcome {
    pub recorder: Recorder,
    pub elapsed: Duration,
    /// Operations an open loop gave up sending (see [`Plan`]'s give-up).
    pub unsent: u64,
}

/// Send the operations `next_op` makes to `target` as `plan` says, and
/// wait for every one sent.
pub async fn run<T: Target>(
    target: Arc<T>,
    mut next_op: impl FnMut() -> Op,
    plan: Plan,
) -> Outcome {
    let recorder = Arc::new(Mutex::new(Recorder::new()));
    let start = Instant::now();
    let progress = tokio::spawn(report_progress(recorder.clone(), start));
    let slots = Arc::new(Semaphore::new(plan.concurrency));
    let give_up = plan.give_up(start);
    let mut in_flight = JoinSet::new();
    let mut sent = 0;
    while plan.total().is_none_or(|total| sent < total) {
        let intended = match plan.intended(start, sent) {
            Some(at) => Some(due(at).await),
            None => None,
        };
        let Some(slot) = acquire(&slots, give_up).await else {
            break;
        };
        if plan.closed_loop_over(start) {
            break;
        }
        let intended = intended.unwrap_or_else(Instant::now);
        in_flight.spawn(send(
            target.clone(),
            next_op(),
            intended,
            slot,
            recorder.clone(),
        ));
        sent += 1;
        while in_flight.try_join_next().is_some() {}
    }
    while in_flight.join_next().await.is_some() {}
    progress.abort();
    let elapsed = start.elapsed();
    let unsent = plan.total().map_or(0, |total| total - sent);
    let recorder = std::mem::take(&mut *recorder.lock().unwrap_or_else(PoisonError::into_inner));
    Outcome {
        recorder,
        elapsed,
        unsent,
    }
}

/// Wait for `at`; answers the time to measure the operation from. When the
/// run is behind, that is `at`: the wait for slots counts. When it is
/// ahead, that is when the timer fired: tokio's timer has 1 ms ticks, and
/// that lateness is this program's, not the system's.
async fn due(at: Instant) -> Instant {
    if at <= Instant::now() {
        return at;
    }
    sleep_until(at).await;
    Instant::now()
}

/// A free slot, or `None` once `give_up` passes first.
async fn acquire(slots: &Arc<Semaphore>, give_up: Option<Instant>) -> Option<OwnedSemaphorePermit> {
    let wait = slots.clone().acquire_owned();
    match give_up {
        Some(at) => tokio::select! {
            slot = wait => slot.ok(),
            _ = sleep_until(at) => None,
        },
        None => wait.await.ok(),
    }
}

/// One operation: its latency runs from `intended`, not from now.
async fn send<T: Target>(
    target: Arc<T>,
    op: Op,
    intended: Instant,
    slot: OwnedSemaphorePermit,
    recorder: Arc<Mutex<Recorder>>,
) {
    let kind = op.kind;
    let outcome = target.execute(op).await;
    let latency = intended.elapsed();
    drop(slot);
    let mut recorder = recorder.lock().unwrap_or_else(PoisonError::into_inner);
    recorder.record(kind, latency, outcome);
}

/// A line on stderr every second: operations done, the rate over the last
/// second, errors.
async fn report_progress(recorder: Arc<Mutex<Recorder>>, start: Instant) {
    let mut ticks =
        tokio::time::interval_at(start + Duration::from_secs(1), Duration::from_secs(1));
    let mut done_before = 0;
    loop {
        ticks.tick().await;
        let (done, errors) = {
            let recorder = recorder.lock().unwrap_or_else(PoisonError::into_inner);
            (recorder.completed(), recorder.errors())
        };
        eprintln!(
            "{}",
            progress_line(start.elapsed(), done, done - done_before, errors)
        );
        done_before = done;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::bench::targets::Done;
    use crate::bench::workload::OpKind;

    /// Answers every operation after `service` (virtual time).
    struct Slow {
        service: Duration,
    }

    impl Target for Slow {
        async fn execute(&self, _op: Op) -> Result<Done, String> {
            if !self.service.is_zero() {
                tokio::time::sleep(self.service).await;
            }
            Ok(Done::Ok)
        }
    }

    fn read() -> Op {
        Op {
            kind: OpKind::Read,
            key: "k".into(),
            value: Vec::new(),
        }
    }

    async fn run_slow(service_ms: u64, plan: Plan) -> Outcome {
        let target = Arc::new(Slow {
            service: Duration::from_millis(service_ms),
        });
        run(target, read, plan).await
    }

    fn plan(rate: Option<f64>, ops: u64, concurrency: usize) -> Plan {
        Plan {
            rate,
            ops: Some(ops),
            duration: None,
            concurrency,
        }
    }

    fn for_a_second(rate: Option<f64>, concurrency: usize) -> Plan {
        Plan {
            ops: None,
            duration: Some(Duration::from_secs(1)),
            ..plan(rate, 0, concurrency)
        }
    }

    /// The median and the maximum read latency, in whole ms (HdrHistogram
    /// keeps 3 digits).
    fn read_ms(outcome: &Outcome) -> (u64, u64) {
        let report = outcome.recorder.op_report(OpKind::Read, outcome.elapsed);
        let ms = |us: u64| (us as f64 / 1000.0).round() as u64;
        (ms(report.latency_us.p50), ms(report.latency_us.max))
    }

    #[tokio::test(start_paused = true)]
    async fn latency_counts_the_wait_behind_a_slow_system() {
        // 100 ops/s intended (10 ms apart), one slot, 15 ms per op: op i is
        // intended at 10·i ms, sent at 15·i ms, done at 15·(i+1) ms — so
        // its latency is 15 + 5·i ms, up to 110 ms for op 19.
        let outcome = run_slow(15, plan(Some(100.0), 20, 1)).await;
        assert_eq!(outcome.recorder.completed(), 20);
        assert_eq!(outcome.unsent, 0);
        assert_eq!(read_ms(&outcome), (60, 110));
        assert_eq!(outcome.elapsed, Duration::from_millis(300));
        // The same system measured in a closed loop shows only the 15 ms
        // of service time: the queueing is what the open loop adds.
        let closed = run_slow(15, plan(None, 20, 1)).await;
        assert_eq!(read_ms(&closed), (15, 15));
    }

    #[tokio::test(start_paused = true)]
    async fn a_system_that_keeps_up_shows_its_service_time() {
        let outcome = run_slow(5, plan(Some(100.0), 50, 4)).await;
        assert_eq!(read_ms(&outcome), (5, 5));
        // Slots overlap: 4 slots of 30 ms each keep up with 10 ms spacing.
        let overlapped = run_slow(30, plan(Some(100.0), 50, 4)).await;
        assert_eq!(read_ms(&overlapped), (30, 30));
        assert_eq!(overlapped.elapsed, Duration::from_millis(490 + 30));
    }

    #[tokio::test(start_paused = true)]
    async fn timer_ticks_are_not_counted_as_latency() {
        // 3000 ops/s: intended 0.33 ms apart, but tokio's timer fires on
        // whole milliseconds. An instant answer must measure as instant.
        let outcome = run_slow(0, plan(Some(3000.0), 30, 4)).await;
        assert_eq!(outcome.recorder.completed(), 30);
        assert_eq!(read_ms(&outcome), (0, 0));
    }

    #[tokio::test(start_paused = true)]
    async fn a_run_far_behind_gives_up_and_counts_what_it_never_sent() {
        // 100 ops due within 1 s; each takes 1.5 s on the one slot. Sending
        // stops at 2 s: ops 0 and 1 went out (at 0 s and 1.5 s), 98 never
        // did, and the run ends when op 1 is done.
        let outcome = run_slow(1500, for_a_second(Some(100.0), 1)).await;
        assert_eq!(outcome.recorder.completed(), 2);
        assert_eq!(outcome.unsent, 98);
        assert_eq!(outcome.elapsed, Duration::from_secs(3));
    }

    #[tokio::test(start_paused = true)]
    async fn a_closed_loop_runs_for_its_duration() {
        let outcome = run_slow(100, for_a_second(None, 2)).await;
        // Two slots, 100 ms each, for 1 s.
        assert_eq!(outcome.recorder.completed(), 20);
        assert_eq!(outcome.unsent, 0);
    }
}
