//! Client requests as the front ends see them: counted by front end,
//! operation and outcome, and timed from arrival to answer.

use super::{catalog, Metrics};
use redis_protocol::resp2::types::BytesFrame;
use ringkv_core::message::ClientError;
use std::time::Duration;

/// Which front end answered.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Frontend {
    Http,
    Resp,
}

impl Frontend {
    fn label(self) -> &'static str {
        match self {
            Frontend::Http => "http",
            Frontend::Resp => "resp",
        }
    }
}

/// How a request ended, as few classes as an operator acts on.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// Answered (a read that found nothing included).
    Ok,
    /// Refused for what it asked: a bad key, value, quorum or command.
    Invalid,
    /// Refused for its credential (401, 403, `-NOAUTH`, `-NOPERM`).
    Denied,
    /// A blind write to a key at `max_siblings` (409).
    Conflict,
    /// Too few replicas answered, or the node is read-only (503).
    Unavailable,
    /// A storage failure or a bug (500).
    Error,
    /// Shed at a bound before any work (HTTP 503 + `Retry-After`, `-BUSY`).
    Overloaded,
}

impl Outcome {
    pub const ALL: [Outcome; 7] = [
        Outcome::Ok,
        Outcome::Invalid,
        Outcome::Denied,
        Outcome::Conflict,
        Outcome::Unavailable,
        Outcome::Error,
        Outcome::Overloaded,
    ];

    fn label(self) -> &'static str {
        match self {
            Outcome::Ok => "ok",
            Outcome::Invalid => "invalid",
            Outcome::Denied => "denied",
            Outcome::Conflict => "conflict",
            Outcome::Unavailable => "unavailable",
            Outcome::Error => "error",
            Outcome::Overloaded => "overloaded",
        }
    }

    /// The outcome of a request the node refused or failed.
    pub fn of_error(error: &ClientError) -> Outcome {
        match error {
            ClientError::Invalid(_) | ClientError::Refused(_) => Outcome::Invalid,
            ClientError::Conflict(_) => Outcome::Conflict,
            ClientError::Unavailable { .. }
            | ClientError::ReadOnly { .. }
            | ClientError::TooLate { .. }
            | ClientError::Indeterminate { .. } => Outcome::Unavailable,
            ClientError::Storage { .. } => Outcome::Error,
            ClientError::Overloaded { .. } => Outcome::Overloaded,
        }
    }

    /// The outcome of a Redis reply made without the node: an error is a
    /// refused credential (`NOAUTH`, `NOPERM`, `WRONGPASS`) or a bad command.
    pub fn of_resp(reply: &BytesFrame) -> Outcome {
        let BytesFrame::Error(message) = reply else {
            return Outcome::Ok;
        };
        let denied = ["NOAUTH", "NOPERM", "WRONGPASS"];
        if denied.iter().any(|code| message.starts_with(code)) {
            Outcome::Denied
        } else if message.starts_with("BUSY") {
            Outcome::Overloaded
        } else {
            Outcome::Invalid
        }
    }

    /// The outcome of an HTTP answer with `status`.
    pub fn of_http(status: u16) -> Outcome {
        match status {
            200..=399 | 404 => Outcome::Ok,
            401 | 403 => Outcome::Denied,
            409 => Outcome::Conflict,
            503 => Outcome::Unavailable,
            400..=499 => Outcome::Invalid,
            _ => Outcome::Error,
        }
    }
}

impl Metrics {
    /// One request answered: `op` is a short, fixed name (`get`, `put`,
    /// `mset`, …), never user input, so the series stay few.
    pub fn request(&self, frontend: Frontend, op: &'static str, outcome: Outcome, took: Duration) {
        let front = frontend.label();
        let labels = [
            ("frontend", front),
            ("op", op),
            ("outcome", outcome.label()),
        ];
        self.counter(catalog::REQUESTS, &labels).increment(1);
        self.histogram(
            catalog::REQUEST_DURATION,
            &[("frontend", front), ("op", op)],
        )
        .record(took.as_secs_f64());
    }

    /// Series of every outcome of `op`, at zero, so rates exist before the
    /// first failure.
    pub fn declare_requests(&self, frontend: Frontend, ops: &[&'static str]) {
        for op in ops {
            for outcome in Outcome::ALL {
                let labels = [
                    ("frontend", frontend.label()),
                    ("op", *op),
                    ("outcome", outcome.label()),
                ];
                self.counter(catalog::REQUESTS, &labels).increment(0);
            }
        }
    }
}
