//! Connection liveness: acknowledgements, pings and the progress rule.
//!
//! # Why an application-level mechanism
//!
//! A TCP connection can stop carrying messages without either end hearing
//! of it: during a silent partition (packets dropped, nothing reset) the
//! writer's kernel sits in retransmission backoff (which reaches 120 s)
//! with the frames in limbo, and a paused peer (SIGSTOP, a long GC-like
//! stall, a wedged node thread) keeps acking at the TCP level while its
//! receive buffer fills. The alternatives do not cover both:
//!
//! - `TCP_USER_TIMEOUT` bounds how long *written data* may stay unacked
//!   by the peer's kernel, so it catches the partition (with data in
//!   flight) but never the paused process, whose kernel acks everything.
//! - TCP keepalive only probes an *idle* connection, also only at the
//!   kernel level (a paused process answers), and its probes stop once
//!   data is queued, exactly when a partition bites.
//!
//! So the acceptor itself reports what it has *read*: every frame counts,
//! and an [`ack`](encode_ack) carrying the number of frames received so far
//! goes back on the connection (at most every [`ACK_INTERVAL`] while frames
//! arrive, and at once for a ping). The writer drops the connection when
//! frames stay unacknowledged without progress for [`PROGRESS_TIMEOUT`]
//! (see [`Progress`]), and sends a ping after [`PING_INTERVAL`] without a
//! write, so an idle connection's silence is noticed too: within
//! `PING_INTERVAL + PROGRESS_TIMEOUT` (1.25 s). The acceptor closes a
//! connection on which nothing arrived for [`INBOUND_IDLE_TIMEOUT`], so
//! half-dead connections left by a partition do not pile up.
//!
//! # Bounds
//!
//! - A connection stops carrying frames: dropped, logged once and the
//!   peer reported [`Unreachable`](super::Inbound::Unreachable) within
//!   `PROGRESS_TIMEOUT` of the first frame it left unacknowledged, so
//!   within `PING_INTERVAL + PROGRESS_TIMEOUT` (1.25 s) of the fault when
//!   idle, plus up to [`ACK_INTERVAL`] of ack pacing.
//! - After a heal, traffic flows again within 1 s whatever the partition's
//!   length. A connection still alive at the heal has waited less than
//!   `PROGRESS_TIMEOUT` since its frames became unacknowledged or since the
//!   last ack (whose segment also reset the kernel's retransmission
//!   backoff), so the kernel's retransmission timer is still short (Linux:
//!   200 ms doubling, the next retransmission at most 0.8 s away) unless the
//!   deadline drops the connection first; then, as after a longer
//!   partition, the next message
//!   reconnects after at most the reconnect backoff (250 ms) and a connect
//!   attempt bounded by `connect_timeout` (500 ms in the server, below the
//!   kernel's 1 s SYN retransmission: an attempt whose SYN was lost just
//!   before the heal is abandoned and retried, 750 ms at worst).
//! - The acceptor closes a connection silent for [`INBOUND_IDLE_TIMEOUT`]
//!   (5 s): a half-dead inbound connection a partition leaves behind
//!   lingers that long at most.
//! - Memory: two counters and two instants per side of a connection.
//!
//! # Wire
//!
//! Past the handshake (untagged), every frame starts with a one-byte tag:
//! [`TAG_MESSAGE`] + postcard message or [`TAG_PING`] (nothing else) from
//! the connector, [`TAG_ACK`] + u64 big-endian count from the acceptor.
//! The tag is transport overhead outside the message budget: a message of
//! up to `max_frame_bytes` still fits, its frame being one byte longer
//! (see [`message_codec`](super::message_codec)).

use std::fmt;
use std::time::Duration;

use bytes::{BufMut, Bytes, BytesMut};
use tokio::time::Instant;

/// Frames stay unacknowledged, with no acknowledgement progress, for at
/// most this long (seconds) before the connection is dropped and the peer
/// reported unreachable. One second: far above a LAN round trip plus
/// [`ACK_INTERVAL`] (so a healthy peer never trips it), far below the
/// protocol's request timeouts (so a quorum learns of the loss while it
/// still matters). Acks count whole frames, so one frame must cross
/// within it: a link needs `max_frame_bytes` per second of bandwidth for
/// the largest frames (the default settings' largest is tens of MB, rare;
/// ordinary messages are a few KB).
pub(super) const PROGRESS_TIMEOUT: Duration = Duration::from_secs(1);

/// A connection that wrote nothing for this long (milliseconds) sends a
/// ping, so a silent link is noticed within `PING_INTERVAL +
/// PROGRESS_TIMEOUT` even when there is nothing to send. 250 ms costs a
/// 5-byte frame and a 13-byte ack four times a second per idle peer.
pub(super) const PING_INTERVAL: Duration = Duration::from_millis(250);

/// The acceptor acknowledges at most this often (milliseconds) while
/// frames arrive (a ping is acknowledged at once), so a burst of messages
/// costs a few acks, not one per frame, and no ack waits longer than this.
pub(super) const ACK_INTERVAL: Duration = Duration::from_millis(50);

/// An inbound connection on which no frame (message or ping) arrived for
/// this long (seconds) is closed: its writer pings every
/// [`PING_INTERVAL`], so 20 missed pings mean the writer is gone (it
/// dropped the connection during a partition) or stuck. Also bounds how
/// long writing one ack may take.
pub(super) const INBOUND_IDLE_TIMEOUT: Duration = Duration::from_secs(5);

/// Tag of a frame carrying one postcard-encoded message.
pub(super) const TAG_MESSAGE: u8 = 0;
/// Tag of a ping: asks for an immediate ack, carries nothing.
pub(super) const TAG_PING: u8 = 1;
/// Tag of an ack: the count of frames received so far, u64 big-endian.
pub(super) const TAG_ACK: u8 = 2;
/// Bytes the tag adds to every frame past the handshake.
pub(super) const TAG_BYTES: usize = 1;
/// Largest frame the connector accepts from the acceptor past the
/// handshake (an ack is 9 bytes), so a misbehaving acceptor cannot make
/// it buffer anything large.
pub(super) const MAX_ACK_FRAME: usize = 64;

/// What the connector sends past the handshake.
#[derive(Debug, PartialEq, Eq)]
pub(super) enum Frame<'a> {
    /// A message's postcard bytes.
    Message(&'a [u8]),
    Ping,
}

/// A frame that breaks the protocol; the connection is closed.
#[derive(Debug, PartialEq, Eq)]
pub(super) struct Garbage(pub(super) String);

impl fmt::Display for Garbage {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// Decodes the tag of a frame from the connector.
pub(super) fn decode_frame(frame: &[u8]) -> Result<Frame<'_>, Garbage> {
    match frame.split_first() {
        Some((&TAG_MESSAGE, msg)) => Ok(Frame::Message(msg)),
        Some((&TAG_PING, [])) => Ok(Frame::Ping),
        Some((&TAG_PING, rest)) => Err(Garbage(format!("ping with {} extra bytes", rest.len()))),
        Some((tag, _)) => Err(Garbage(format!("unknown frame tag {tag}"))),
        None => Err(Garbage("empty frame".into())),
    }
}

/// A ping frame.
pub(super) fn ping() -> Bytes {
    Bytes::from_static(&[TAG_PING])
}

pub(super) fn encode_ack(count: u64) -> Bytes {
    let mut frame = BytesMut::with_capacity(TAG_BYTES + 8);
    frame.put_u8(TAG_ACK);
    frame.put_u64(count);
    frame.freeze()
}

/// Decodes an ack frame: its tag, and exactly 8 bytes of count.
pub(super) fn decode_ack(frame: &[u8]) -> Result<u64, Garbage> {
    match frame.split_first() {
        Some((&TAG_ACK, count)) => match <[u8; 8]>::try_from(count) {
            Ok(count) => Ok(u64::from_be_bytes(count)),
            Err(_) => Err(Garbage(format!("ack of {} bytes", frame.len()))),
        },
        Some((tag, _)) => Err(Garbage(format!("unexpected frame tag {tag} from acceptor"))),
        None => Err(Garbage("empty frame from acceptor".into())),
    }
}

/// The connector's bookkeeping for one connection: frames written and
/// acknowledged, and since when the oldest unacknowledged frame has been
/// waiting without progress.
///
/// The rule: while frames are unacknowledged, the connection is dropped
/// once [`PROGRESS_TIMEOUT`] passed since the later of (a) the write of
/// the oldest unacknowledged frame and (b) the last ack that advanced.
/// Because an ack covers every frame read so far, after an advancing ack
/// the oldest unacknowledged frame was written before it, so (b) alone
/// decides; before any, the oldest unacknowledged frame is the first one
/// written since everything was acknowledged. Two numbers and one instant
/// therefore hold all the rule needs: no per-batch list to bound or
/// coalesce. (A rule on the age of the oldest frame alone would drop a
/// healthy but bandwidth-bound link whose acks keep advancing.)
///
/// A frame is stamped when its write *begins*, before it reaches the
/// kernel: it can only look older than it is, so a failure is never
/// detected late.
#[derive(Debug)]
pub(super) struct Progress {
    written: u64,
    acked: u64,
    /// Start of the current wait: when frames became unacknowledged, or
    /// the last ack that advanced since. Meaningless when all are acked.
    waiting_since: Instant,
    /// When the last write began; a ping is due [`PING_INTERVAL`] later.
    last_write: Instant,
}

impl Progress {
    pub(super) fn new(now: Instant) -> Self {
        Progress {
            written: 0,
            acked: 0,
            waiting_since: now,
            last_write: now,
        }
    }

    /// Records `frames` frames whose write begins at `now`.
    pub(super) fn wrote(&mut self, frames: usize, now: Instant) {
        if self.written == self.acked {
            self.waiting_since = now;
        }
        self.written = self.written.saturating_add(frames as u64);
        self.last_write = now;
    }

    /// Records an ack of `count` frames received. A count that goes back
    /// or covers frames never written is garbage: TCP keeps the acks in
    /// order, so only a broken or hostile peer sends one.
    pub(super) fn acked(&mut self, count: u64, now: Instant) -> Result<(), Garbage> {
        if count < self.acked || count > self.written {
            return Err(Garbage(format!(
                "ack of {count} frames, after {} acked of {} written",
                self.acked, self.written
            )));
        }
        if count > self.acked {
            self.acked = count;
            self.waiting_since = now;
        }
        Ok(())
    }

    /// When the connection is to be dropped unless an ack advances first;
    /// `None` while every frame written is acknowledged.
    pub(super) fn deadline(&self) -> Option<Instant> {
        (self.written > self.acked).then(|| self.waiting_since + PROGRESS_TIMEOUT)
    }

    /// Frames written but not (yet) acknowledged: lost or in limbo when
    /// the connection is dropped.
    pub(super) fn unacked(&self) -> u64 {
        self.written - self.acked
    }

    /// When a ping is due if nothing is written before.
    pub(super) fn ping_at(&self) -> Instant {
        self.last_write + PING_INTERVAL
    }
}

/// The acceptor's side: frames received, what was last acknowledged and
/// when, and when anything was last heard.
#[derive(Debug)]
pub(super) struct Acker {
    received: u64,
    acked: u64,
    last_ack: Instant,
    /// A ping arrived since the last ack: acknowledge at once.
    ping: bool,
    last_heard: Instant,
}

impl Acker {
    pub(super) fn new(now: Instant) -> Self {
        Acker {
            received: 0,
            acked: 0,
            last_ack: now,
            ping: false,
            last_heard: now,
        }
    }

    /// Records one frame received at `now`.
    pub(super) fn heard(&mut self, frame: &Frame<'_>, now: Instant) {
        self.received = self.received.saturating_add(1);
        self.ping |= *frame == Frame::Ping;
        self.last_heard = now;
    }

    /// When the next ack is due; `None` when everything is acknowledged.
    /// At once for a ping, otherwise [`ACK_INTERVAL`] after the last ack
    /// (which is already past after a quiet spell: the first frame of a
    /// burst is acknowledged at once too).
    pub(super) fn ack_at(&self) -> Option<Instant> {
        if self.received == self.acked {
            None
        } else if self.ping {
            Some(self.last_heard)
        } else {
            Some(self.last_ack + ACK_INTERVAL)
        }
    }

    /// The ack frame to send now, recorded as sent.
    pub(super) fn ack(&mut self, now: Instant) -> Bytes {
        self.acked = self.received;
        self.last_ack = now;
        self.ping = false;
        encode_ack(self.received)
    }

    /// When the connection is closed for silence unless a frame arrives.
    pub(super) fn idle_deadline(&self) -> Instant {
        self.last_heard + INBOUND_IDLE_TIMEOUT
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frames_and_acks_round_trip_and_garbage_is_refused() {
        assert_eq!(decode_frame(&ping()), Ok(Frame::Ping));
        assert_eq!(decode_frame(&[TAG_MESSAGE, 7]), Ok(Frame::Message(&[7])));
        assert!(decode_frame(&[]).is_err());
        assert!(decode_frame(&[TAG_PING, 0]).is_err());
        assert!(decode_frame(&[9, 1, 2]).is_err());
        assert_eq!(decode_ack(&encode_ack(u64::MAX - 3)), Ok(u64::MAX - 3));
        assert!(decode_ack(&[TAG_ACK, 1, 2]).is_err());
        assert!(decode_ack(&[TAG_PING]).is_err());
        assert!(decode_ack(&[]).is_err());
    }

    #[test]
    fn the_deadline_runs_from_the_oldest_unacked_write_or_the_last_advance() {
        let t0 = Instant::now();
        let ms = Duration::from_millis;
        let mut p = Progress::new(t0);
        assert_eq!(p.deadline(), None, "nothing written, nothing owed");
        p.wrote(3, t0 + ms(10));
        p.wrote(2, t0 + ms(20));
        assert_eq!(p.deadline(), Some(t0 + ms(10) + PROGRESS_TIMEOUT));
        p.acked(3, t0 + ms(40)).unwrap();
        assert_eq!(p.deadline(), Some(t0 + ms(40) + PROGRESS_TIMEOUT));
        p.acked(3, t0 + ms(90)).unwrap();
        assert_eq!(
            p.deadline(),
            Some(t0 + ms(40) + PROGRESS_TIMEOUT),
            "a repeated count is no progress"
        );
        p.acked(5, t0 + ms(100)).unwrap();
        assert_eq!(p.deadline(), None);
        assert_eq!(p.ping_at(), t0 + ms(20) + PING_INTERVAL);
        assert!(p.acked(6, t0 + ms(110)).is_err(), "more than written");
        assert!(p.acked(4, t0 + ms(110)).is_err(), "going back");
    }

    #[test]
    fn acks_are_immediate_for_pings_and_paced_for_messages() {
        let t0 = Instant::now();
        let mut a = Acker::new(t0);
        assert_eq!(a.ack_at(), None);
        let later = t0 + Duration::from_secs(1);
        a.heard(&Frame::Message(&[]), later);
        assert_eq!(a.ack_at(), Some(t0 + ACK_INTERVAL), "already due");
        assert_eq!(decode_ack(&a.ack(later)), Ok(1));
        a.heard(&Frame::Message(&[]), later);
        assert_eq!(a.ack_at(), Some(later + ACK_INTERVAL), "paced");
        a.heard(&Frame::Ping, later);
        assert_eq!(a.ack_at(), Some(later), "a ping is answered at once");
        assert_eq!(decode_ack(&a.ack(later)), Ok(3));
        assert_eq!(a.idle_deadline(), later + INBOUND_IDLE_TIMEOUT);
    }
}
