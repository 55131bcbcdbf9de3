//! The node thread's event queue, bounded in events and bytes
//! (`[limits] node_queue_events`, `node_queue_bytes`), and who may still
//! get in when it is full.
//!
//! - A **client request** beyond the bound is refused at once with
//!   [`ClientError::Overloaded`]: it has not been started, so nothing is
//!   lost, and the client learns at once to back off instead of waiting
//!   in a queue it would time out in.
//! - A **peer's request** (replicate, read, forward, anti-entropy, hint
//!   delivery, transfer request) beyond the bound is dropped and counted:
//!   the asker's quorum counts a silent replica as failed, asks a
//!   stand-in, retries or repairs later. A dropped forward is answered
//!   `Overloaded` at once from here, as a client request would be, so the
//!   forwarding node need not wait out its timeout.
//! - An **answer to this node's own request** (ack, read reply, forward
//!   reply, transfer page), gossip, and the transport's reports
//!   (unreachable, incompatible, too large) use a reserve up to twice the
//!   bound. They complete work already taken on and free the operations
//!   in flight that wait for them: dropping them would turn finished work
//!   into timeouts and retries — more load, not less — and a lost
//!   unreachability report would leave operations waiting on a peer that
//!   is gone. Gossip keeps the member list true while the node is busy; a
//!   node that dropped it would soon think its peers down. Their number
//!   is bounded by the work that asked for them, and twice the bound
//!   caps them all the same.
//! - **Control events** (`/status`, repair, leave, replica reads, stop)
//!   take no budget: each is sent by an HTTP or RESP connection that waits
//!   for its answer, so the connection limits bound them, and an operator
//!   must be able to see an overloaded node's status and stop it.

use super::Event;
use crate::shed::{Budget, Cause, Full, Held, Permit, Priority, Queue, Shedding};
use crate::transport::{Inbound, InboundSink, WeakTransport};
use ringkv_core::message::{ClientError, Message};
use ringkv_core::NodeId;
use std::sync::{mpsc, Arc, OnceLock};

/// An event and its share of the queue's budget (none for control events).
pub(super) struct Queued {
    pub event: Event,
    _permit: Option<Permit>,
}

/// The node thread's event queue, made before the node so the transport
/// can deliver straight into it (no task hop per message).
pub struct EventQueue {
    pub(super) sender: Sender,
    pub(super) rx: mpsc::Receiver<Queued>,
}

impl EventQueue {
    /// A queue within `budget`'s bound; what it sheds is counted in
    /// `shedding`.
    pub fn new(node: &NodeId, budget: Arc<Budget>, shedding: Arc<Shedding>) -> Self {
        let (tx, rx) = mpsc::channel();
        let sender = Sender {
            tx,
            budget,
            shedding,
            node: node.to_string(),
        };
        EventQueue { sender, rx }
    }

    /// What the transport delivers peer messages and reports into; give
    /// it the transport, once bound, through [`PeerSink::acceptor`].
    pub fn peer_sink(&self) -> PeerSink {
        PeerSink {
            sender: self.sender.clone(),
            transport: Arc::new(OnceLock::new()),
        }
    }
}

/// Adds events to the queue within its budget.
#[derive(Clone)]
pub(super) struct Sender {
    tx: mpsc::Sender<Queued>,
    budget: Arc<Budget>,
    pub(super) shedding: Arc<Shedding>,
    /// This node's id, for the overload error.
    node: String,
}

impl Sender {
    /// A client request of `bytes` (encoded), refused when the queue is
    /// full; `Ok(false)` when the node thread is gone.
    pub fn client(&self, event: Event, bytes: usize) -> Result<bool, ClientError> {
        let permit = self
            .budget
            .try_take(bytes, Priority::Normal)
            .map_err(|full| self.refuse(full))?;
        Ok(self.send(event, Some(permit)))
    }

    /// An event that takes no budget (see the module doc); false when the
    /// node thread is gone.
    pub fn control(&self, event: Event) -> bool {
        self.send(event, None)
    }

    /// What the queue holds now.
    pub fn held(&self) -> Held {
        self.budget.held()
    }

    fn send(&self, event: Event, permit: Option<Permit>) -> bool {
        let queued = Queued {
            event,
            _permit: permit,
        };
        self.tx.send(queued).is_ok()
    }

    /// Count a client request refused for `full`; the error it gets.
    fn refuse(&self, full: Full) -> ClientError {
        self.shedding.record(Queue::NodeClients, full.into());
        let bound = self.budget.bound();
        let (what, limit) = match full {
            Full::Count => ("queued events", bound.count),
            Full::Bytes => ("queued event bytes", bound.bytes),
        };
        ClientError::Overloaded {
            node: self.node.clone(),
            what: what.into(),
            limit,
        }
    }
}

/// The transport's side of the node thread's queue.
///
/// It also answers a forwarded request with `ForwardAccepted` the moment
/// it is queued, from the transport's own task: the forwarder hedges a
/// write only with a coordinator that has not, and a process that reads
/// its socket is alive even while its node thread is busy (a group
/// commit, a loaded machine) — answering from the node thread made a busy
/// but live coordinator look silent and its write got coordinated twice.
pub struct PeerSink {
    sender: Sender,
    transport: Arc<OnceLock<WeakTransport<Message>>>,
}

impl PeerSink {
    /// Where to set the transport once bound.
    pub fn acceptor(&self) -> Arc<OnceLock<WeakTransport<Message>>> {
        Arc::clone(&self.transport)
    }

    /// Answer `from` directly through the transport, if it is up.
    fn answer(&self, to: &NodeId, msg: Message) {
        if let Some(transport) = self.transport.get().and_then(WeakTransport::upgrade) {
            transport.send(to, msg);
        }
    }

    /// A peer message the queue had no room for: counted, and a forward
    /// refused as its client's request would be.
    fn shed(&self, from: &NodeId, msg: &Message, full: Full) {
        if let Message::Forward { req, .. } = msg {
            let refusal = self.sender.refuse(full);
            // `refuse` counted it as a client request; it is that too.
            let reply = Message::ForwardReply {
                req: *req,
                result: Err(refusal),
            };
            return self.answer(from, reply);
        }
        self.sender
            .shedding
            .record(Queue::NodePeers, Cause::from(full));
    }
}

/// How much of the queue a peer's event may use (see the module doc).
fn priority(inbound: &Inbound<Message>) -> Priority {
    match inbound {
        Inbound::Message { msg, .. } if !msg.is_answer() && !matches!(msg, Message::Gossip(_)) => {
            Priority::Normal
        }
        _ => Priority::Reserved,
    }
}

impl InboundSink<Message> for PeerSink {
    fn deliver(&self, inbound: Inbound<Message>, bytes: usize) -> bool {
        let permit = match self.sender.budget.try_take(bytes, priority(&inbound)) {
            Ok(permit) => permit,
            Err(full) => {
                match &inbound {
                    Inbound::Message { from, msg } => self.shed(from, msg, full),
                    _ => self.sender.shedding.record(Queue::NodePeers, full.into()),
                }
                return true;
            }
        };
        if let Inbound::Message {
            from,
            msg: Message::Forward { req, .. },
        } = &inbound
        {
            self.answer(from, Message::ForwardAccepted { req: *req });
        }
        self.sender.send(Event::Peer(inbound), Some(permit))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::shed::Bound;
    use ringkv_core::message::ClientOp;
    use tokio::sync::oneshot;

    fn queue(count: usize, bytes: usize) -> (EventQueue, Arc<Shedding>) {
        let shedding = Arc::new(Shedding::default());
        let budget = Budget::new(Bound { count, bytes });
        (
            EventQueue::new(&NodeId::from("n1"), budget, shedding.clone()),
            shedding,
        )
    }

    fn client() -> Event {
        let op = ClientOp::Get {
            key: b"k".to_vec(),
            r: None,
            pr: None,
        };
        Event::Client {
            op,
            reply: oneshot::channel().0,
        }
    }

    fn peer(msg: Message) -> Inbound<Message> {
        Inbound::Message {
            from: NodeId::from("n2"),
            msg,
        }
    }

    fn replicate_ack() -> Message {
        Message::ReplicateAck {
            req: 1,
            result: Ok(()),
        }
    }

    fn read() -> Message {
        Message::Read {
            req: 1,
            key: b"k".to_vec(),
        }
    }

    #[test]
    fn client_requests_beyond_the_bound_are_refused_at_once_and_counted() {
        let (queue, shedding) = queue(2, 1 << 20);
        assert_eq!(queue.sender.client(client(), 10), Ok(true));
        assert_eq!(queue.sender.client(client(), 10), Ok(true));
        let refused = queue.sender.client(client(), 10).unwrap_err();
        assert_eq!(
            refused.to_string(),
            "n1 is overloaded (queued events at its limit of 2); nothing was done, retry shortly"
        );
        assert_eq!(shedding.get(Queue::NodeClients, Cause::Count), 1);
        // Handled events give their room back.
        drop(queue.rx.recv().unwrap());
        assert_eq!(queue.sender.client(client(), 10), Ok(true));
    }

    #[test]
    fn client_requests_beyond_the_byte_bound_are_refused_naming_it() {
        let (queue, shedding) = queue(100, 1024);
        assert_eq!(queue.sender.client(client(), 600), Ok(true));
        let refused = queue.sender.client(client(), 600).unwrap_err();
        assert!(refused
            .to_string()
            .contains("queued event bytes at its limit of 1024"));
        assert_eq!(shedding.get(Queue::NodeClients, Cause::Bytes), 1);
    }

    #[test]
    fn peer_requests_are_dropped_first_and_answers_and_reports_keep_a_reserve() {
        let (queue, shedding) = queue(2, 1 << 20);
        let sink = queue.peer_sink();
        assert!(sink.deliver(peer(read()), 10));
        assert!(sink.deliver(peer(read()), 10));
        // Full for new work: dropped (still "delivered": the node listens).
        assert!(sink.deliver(peer(read()), 10));
        assert_eq!(shedding.get(Queue::NodePeers, Cause::Count), 1);
        // Answers, gossip and reports still get in, up to twice the bound.
        assert!(sink.deliver(peer(replicate_ack()), 10));
        let report = Inbound::Unreachable {
            peer: NodeId::from("n3"),
        };
        assert!(sink.deliver(report, 0));
        assert!(sink.deliver(peer(replicate_ack()), 10));
        assert_eq!(shedding.get(Queue::NodePeers, Cause::Count), 2);
        // A client request is refused, a control event is not.
        assert!(queue.sender.client(client(), 10).is_err());
        assert!(queue.sender.control(Event::Stop));
        let queued = std::iter::from_fn(|| queue.rx.try_recv().ok()).count();
        assert_eq!(queued, 5, "two reads, one ack, one report, the stop");
    }

    #[test]
    fn a_forward_the_queue_has_no_room_for_is_refused_as_a_client_request() {
        let (queue, shedding) = queue(1, 1 << 20);
        let sink = queue.peer_sink();
        assert!(sink.deliver(peer(read()), 10));
        let forward = Message::Forward {
            req: 7,
            op: ClientOp::Get {
                key: b"k".to_vec(),
                r: None,
                pr: None,
            },
            start_by: 0,
        };
        assert!(sink.deliver(peer(forward), 10));
        assert_eq!(shedding.get(Queue::NodeClients, Cause::Count), 1);
        assert_eq!(shedding.get(Queue::NodePeers, Cause::Count), 0);
    }
}
