//! `MULTI` … `EXEC`: commands queued, then applied as a batch.
//!
//! ringkv is leaderless: there is no one place that could apply a batch
//! of keys atomically or hold other clients off while it runs. So `EXEC`
//! runs the queued commands one after another, in order, and answers the
//! array of their own replies — **not atomic, not isolated**: another
//! client may see the first writes before the last, and a failed command
//! does not undo the ones before it. What it does guarantee is that the
//! client is told what happened to each command, and that nothing queued
//! is applied unless `EXEC` is sent: a command refused while queueing
//! (unknown, wrong arguments, not permitted, over the bound) discards the
//! whole transaction with `-EXECABORT`, as in Redis. `WATCH` is refused
//! (see [`watch_refused`]): optimistic locking needs the isolation ringkv
//! does not have, and a client relying on it must not be told it holds.

use super::command::{error, Command};
use super::protocol::Reply;
use crate::shed::Bound;
use redis_protocol::resp2::types::BytesFrame;

/// A command waiting for `EXEC`, with the op it is counted as.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Queued {
    pub op: &'static str,
    pub command: Command,
}

/// The commands queued since `MULTI`.
pub struct Transaction {
    queued: Vec<Queued>,
    bytes: usize,
    /// A command was refused while queueing: `EXEC` discards everything.
    failed: bool,
    /// What may be queued: the connection's pipeline bound, since both
    /// hold commands read but not yet run.
    bound: Bound,
}

impl Transaction {
    pub fn new(bound: Bound) -> Transaction {
        Transaction {
            queued: Vec::new(),
            bytes: 0,
            failed: false,
            bound,
        }
    }

    pub fn len(&self) -> usize {
        self.queued.len()
    }

    /// Queue `command` (`bytes` of arguments): `+QUEUED`, or its refusal,
    /// which dooms the transaction.
    pub fn queue(&mut self, op: &'static str, command: Command, bytes: usize) -> Reply {
        if let Command::Reply(reply) = &command {
            if reply.is_error() {
                self.failed = true;
                return reply.clone();
            }
        }
        if self.queued.len() >= self.bound.count || self.bytes + bytes > self.bound.bytes {
            self.failed = true;
            return error(format!(
                "ERR a transaction holds at most {} commands and {} bytes; \
                 send EXEC sooner or DISCARD",
                self.bound.count, self.bound.bytes
            ))
            .into();
        }
        self.bytes += bytes;
        self.queued.push(Queued { op, command });
        BytesFrame::SimpleString("QUEUED".into()).into()
    }

    /// Mark the transaction doomed by a refusal answered elsewhere (a
    /// command the connection may not run).
    pub fn fail(&mut self) {
        self.failed = true;
    }

    /// What `EXEC` runs: the queued batch, or `-EXECABORT`.
    pub fn exec(self) -> Command {
        if self.failed {
            return Command::Reply(
                error("EXECABORT Transaction discarded because of previous errors.").into(),
            );
        }
        Command::Exec(self.queued)
    }
}

/// Why `WATCH` is refused rather than accepted and ignored.
pub fn watch_refused() -> BytesFrame {
    error(
        "ERR WATCH is not supported by ringkv: it is leaderless, so EXEC is neither \
         atomic nor isolated and optimistic locking cannot be offered",
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::Bytes;

    fn set(k: &str) -> Command {
        Command::Set(Bytes::from(k.to_string()), "v".into(), None)
    }

    const BOUND: Bound = Bound { count: 2, bytes: 8 };

    #[test]
    fn queued_commands_run_only_on_exec_and_in_order() {
        let mut tx = Transaction::new(BOUND);
        let queued = BytesFrame::SimpleString("QUEUED".into()).into();
        assert_eq!(tx.queue("set", set("a"), 2), queued);
        assert_eq!(tx.queue("set", set("b"), 2), queued);
        assert_eq!(tx.len(), 2);
        let Command::Exec(batch) = tx.exec() else {
            panic!("EXEC runs the batch");
        };
        assert_eq!(
            batch.iter().map(|q| q.command.clone()).collect::<Vec<_>>(),
            [set("a"), set("b")]
        );
    }

    #[test]
    fn a_refused_command_or_the_bound_aborts_exec() {
        let abort = Command::Reply(
            error("EXECABORT Transaction discarded because of previous errors.").into(),
        );
        let mut tx = Transaction::new(BOUND);
        let refused = Command::Reply(error("ERR unknown command 'NOPE'").into());
        assert!(tx.queue("other", refused, 4).is_error());
        assert_eq!(tx.exec(), abort);

        let mut tx = Transaction::new(BOUND);
        assert!(tx.queue("set", set("a"), 9).is_error(), "over the bytes");
        assert_eq!(tx.exec(), abort);
        let mut tx = Transaction::new(BOUND);
        tx.queue("set", set("a"), 1);
        tx.queue("set", set("b"), 1);
        assert!(tx.queue("set", set("c"), 1).is_error(), "over the count");
        assert_eq!(tx.exec(), abort);
    }
}
