//! Every message that crosses the network between nodes, and the client
//! operations a node accepts from its front ends.
//!
//! The wire form is postcard behind a handshake that carries the protocol
//! version (see the server's transport), so this enum may only grow at the
//! end: new variants are appended, existing ones never change shape within a
//! protocol version.

use crate::anti_entropy::{AeStep, ExchangeId};
use crate::crdt::{CrdtError, Update};
use crate::gossip::GossipMsg;
use crate::range::TokenRange;
use crate::siblings::{SiblingSet, WriteError};
use crate::version::{CausalContext, Dot};
use crate::{Millis, NodeId};
use serde::{Deserialize, Serialize};

/// The exact number of bytes postcard encodes `value` into — what the
/// transport puts in a frame (behind its length prefix). Every byte budget
/// in the protocol is counted with this one function, never estimated, so
/// a batch that fits its budget fits its frame. Counting does not allocate.
/// A value postcard cannot encode counts as `usize::MAX`: it fits nothing.
pub fn encoded_len<T: Serialize + ?Sized>(value: &T) -> usize {
    postcard::experimental::serialized_size(value).unwrap_or(usize::MAX)
}

/// The limits of one batched message (hint deliveries, transfer pages,
/// anti-entropy steps, gossip member lists): at most `count` entries whose
/// encoded sizes add up to at most `bytes` — except that the first entry
/// always goes, so one entry that alone fills the budget travels alone
/// (it still fits a frame: see [`crate::settings::Settings::max_frame_bytes`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BatchLimits {
    pub bytes: usize,
    pub count: usize,
}

/// A batch being filled, entry by entry, within its [`BatchLimits`].
#[derive(Clone, Debug)]
pub struct Batch {
    limits: BatchLimits,
    bytes: usize,
    count: usize,
}

impl Batch {
    pub fn new(limits: BatchLimits) -> Self {
        assert!(limits.count >= 1, "a batch must be allowed one entry");
        Batch {
            limits,
            bytes: 0,
            count: 0,
        }
    }

    /// Take an entry of `size` encoded bytes if it fits what is left (or
    /// if the batch is still empty); false when the batch is full and the
    /// entry is left for the next one.
    pub fn admit(&mut self, size: usize) -> bool {
        let fits =
            self.count < self.limits.count && self.bytes.saturating_add(size) <= self.limits.bytes;
        if !fits && self.count > 0 {
            return false;
        }
        self.bytes = self.bytes.saturating_add(size);
        self.count += 1;
        true
    }

    /// Take `entry` if it fits (see [`Batch::admit`]), counting its exact
    /// encoded size.
    pub fn admit_entry<T: Serialize + ?Sized>(&mut self, entry: &T) -> bool {
        self.admit(encoded_len(entry))
    }

    /// Encoded bytes of the entries taken so far.
    pub fn bytes(&self) -> usize {
        self.bytes
    }

    pub fn len(&self) -> usize {
        self.count
    }

    pub fn is_empty(&self) -> bool {
        self.count == 0
    }
}

/// The longest prefix of `items` that one batch within `limits` carries
/// (never empty when `items` is not).
pub fn fill_batch<T: Serialize>(items: impl IntoIterator<Item = T>, limits: BatchLimits) -> Vec<T> {
    let mut batch = Batch::new(limits);
    items
        .into_iter()
        .take_while(|item| batch.admit_entry(item))
        .collect()
}

/// Identifies one request a node started; unique per node.
pub type RequestId = u64;

/// Node-to-node protocol.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Message {
    /// Merge this sibling set into your copy of `key`, then acknowledge.
    Replicate {
        req: RequestId,
        key: Vec<u8>,
        siblings: SiblingSet,
    },
    ReplicateAck {
        req: RequestId,
        result: Result<(), String>,
    },
    /// Send me your sibling set of `key` (empty when you have none).
    Read { req: RequestId, key: Vec<u8> },
    ReadReply {
        req: RequestId,
        result: Result<SiblingSet, String>,
    },
    /// Read repair: merge this newer state of `key`; no answer expected.
    Repair { key: Vec<u8>, siblings: SiblingSet },
    /// Coordinate this client operation for me (the one-hop forward of a
    /// node that is not the key's coordinator). A write of a Redis or
    /// `lww` key ([`ClientOp::is_fenced`]) is started only while the
    /// coordinator's clock reads at most `start_by` (the forwarder's clock
    /// when it sent it, plus [`crate::node::FORWARD_START_WITHIN_MS`]);
    /// later it is refused with [`ClientError::TooLate`], unapplied.
    Forward {
        req: RequestId,
        op: ClientOp,
        start_by: Millis,
    },
    ForwardReply {
        req: RequestId,
        result: ClientResult,
    },
    /// One step of a Merkle-tree exchange over `range`.
    AntiEntropy {
        exchange: ExchangeId,
        range: TokenRange,
        step: AeStep,
    },
    /// Membership: digests, member states and probes (see [`crate::gossip`]).
    Gossip(GossipMsg),
    /// Sloppy quorum: keep this replica of `key` as a hint for `owner`,
    /// which is down or silent, and hand it back later. Answered with
    /// [`Message::ReplicateAck`] once the hint is stored.
    HintedReplicate {
        req: RequestId,
        owner: NodeId,
        key: Vec<u8>,
        siblings: SiblingSet,
    },
    /// Hinted handoff: replicas a stand-in kept for you; merge them all.
    HintDelivery {
        req: RequestId,
        entries: Vec<(Vec<u8>, SiblingSet)>,
    },
    HintDeliveryAck {
        req: RequestId,
        result: Result<(), String>,
    },
    /// Ownership handoff: send me the keys of `range` whose N is `n` (see
    /// [`crate::keyspace::n_of`]) after `after` (a key of that range;
    /// `None` from its start), one page at a time.
    TransferRequest {
        range: TokenRange,
        n: u8,
        after: Option<Vec<u8>>,
    },
    /// One page of a range's keys of N `n`; `next` is where the next page
    /// starts (after that key), `None` on the last page.
    TransferPage {
        range: TokenRange,
        n: u8,
        entries: Vec<(Vec<u8>, SiblingSet)>,
        next: Option<Vec<u8>>,
    },
    /// "Your forward `req` reached me and I am coordinating it", sent at
    /// once for a write (never for a read, which may be hedged freely): a
    /// forwarder hedges a *write* only with a coordinator that has
    /// not said so (a paused or cut-off one), since a write coordinated
    /// twice leaves a duplicate sibling.
    ForwardAccepted { req: RequestId },
    /// Tombstone collection (see [`crate::gc`]): do you hold exactly these
    /// states (a key and its digest), or nothing as a non-replica, and no
    /// hint of them? Answered with [`Message::GcVotes`].
    GcProbe {
        req: RequestId,
        keys: Vec<crate::gc::Collectable>,
    },
    /// One vote per key of the probe, in its order.
    GcVotes { req: RequestId, yes: Vec<bool> },
    /// Every member holds these states: delete each key still in it, and
    /// drop versions its context covers for a while.
    GcDelete { keys: Vec<crate::gc::Fence> },
}

impl Message {
    /// What kind of message this is, in words, for logs and error reports.
    pub fn kind(&self) -> &'static str {
        match self {
            Message::Replicate { .. } => "replicate",
            Message::ReplicateAck { .. } => "replicate ack",
            Message::Read { .. } => "read",
            Message::ReadReply { .. } => "read reply",
            Message::Repair { .. } => "read repair",
            Message::Forward { .. } => "forward",
            Message::ForwardReply { .. } => "forward reply",
            Message::AntiEntropy { .. } => "anti-entropy",
            Message::Gossip(_) => "gossip",
            Message::HintedReplicate { .. } => "hinted replicate",
            Message::HintDelivery { .. } => "hint delivery",
            Message::HintDeliveryAck { .. } => "hint delivery ack",
            Message::TransferRequest { .. } => "transfer request",
            Message::TransferPage { .. } => "transfer page",
            Message::ForwardAccepted { .. } => "forward accepted",
            Message::GcProbe { .. } => "gc probe",
            Message::GcVotes { .. } => "gc votes",
            Message::GcDelete { .. } => "gc delete",
        }
    }

    /// Whether this message answers something the receiving node asked
    /// (an ack, a reply, a transfer page, a forward's outcome), rather than
    /// asking it for new work. A node under load sheds new work first:
    /// an answer completes work it already took on — it frees an operation
    /// in flight, or completes a write a client may be waiting for — and
    /// dropping it would only turn finished work into a timeout and a
    /// retry.
    pub fn is_answer(&self) -> bool {
        matches!(
            self,
            Message::ReplicateAck { .. }
                | Message::ReadReply { .. }
                | Message::ForwardReply { .. }
                | Message::ForwardAccepted { .. }
                | Message::HintDeliveryAck { .. }
                | Message::TransferPage { .. }
                | Message::GcVotes { .. }
        )
    }
}

/// A client request, as every front end (HTTP, later RESP) hands it over.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum ClientOp {
    Get {
        key: Vec<u8>,
        r: Option<usize>,
        /// Of the R replies, how many must come from the key's real
        /// preference list rather than stand-ins holding hints (Riak's PR);
        /// `None`: no such demand, so a read whose replicas are cut off
        /// answers from the stand-ins (Dynamo's sloppy read).
        pr: Option<usize>,
    },
    Put {
        key: Vec<u8>,
        /// One byte string on the wire (see [`crate::siblings::Sibling::value`]).
        #[serde(with = "serde_bytes")]
        value: Vec<u8>,
        /// The causal context from an earlier read; empty for a blind write.
        context: CausalContext,
        w: Option<usize>,
        /// Of the W acks, how many must come from the key's real preference
        /// list rather than stand-ins (Riak's PW); `None`: no such demand.
        pw: Option<usize>,
        /// Time to live, ms: the value expires this long after its
        /// coordinator's clock reads the write (see
        /// [`crate::siblings::Sibling::expires_at`]); `None`: never.
        ttl_ms: Option<Millis>,
    },
    /// Write a tombstone. Without a context the coordinator first reads the
    /// key (`r` replicas, `pr` of them from the real preference list, as
    /// Riak's delete takes) and deletes what it found, as users of `DELETE`
    /// expect; with one, it deletes exactly what that context saw (`r` and
    /// `pr` unused).
    Delete {
        key: Vec<u8>,
        context: Option<CausalContext>,
        r: Option<usize>,
        pr: Option<usize>,
        w: Option<usize>,
        pw: Option<usize>,
    },
    /// Change a Redis key's value by a CRDT update (see [`crate::crdt`]):
    /// the coordinator reads the key (R replicas, but goes on with what it
    /// has when they do not answer: an update never needs a quorum to be
    /// correct), applies `update` to that and its own copy, and writes the
    /// result (W acks). The reply is [`ClientReply::Updated`].
    Update {
        key: Vec<u8>,
        update: Update,
        w: Option<usize>,
        pw: Option<usize>,
    },
    /// Redis `SCAN`, or a listing of `/kv` keys: the keys of `keyspace`
    /// whose ring token is at least `cursor`, from one replica of the
    /// range holding it (a coverage query: see [`crate::node`]'s `scan`),
    /// examining about `count` keys. The reply is [`ClientReply::Keys`].
    Scan {
        cursor: u64,
        count: usize,
        keyspace: crate::keyspace::Keyspace,
    },
    /// Create or change bucket `name` (see [`crate::bucket`]). It is
    /// coordinated, as a key's write is, by the first healthy node of the
    /// list of `key` ([`crate::bucket::definition_key`]), so two
    /// definitions of one bucket through two nodes are decided by one node
    /// (the second create of a name with another N or policy is refused)
    /// while that node is up. The reply is [`ClientReply::BucketDefined`].
    DefineBucket {
        key: Vec<u8>,
        name: String,
        props: crate::bucket::BucketProps,
    },
}

impl ClientOp {
    pub fn key(&self) -> &[u8] {
        match self {
            ClientOp::Get { key, .. }
            | ClientOp::Put { key, .. }
            | ClientOp::Delete { key, .. }
            | ClientOp::Update { key, .. }
            | ClientOp::DefineBucket { key, .. } => key,
            ClientOp::Scan { .. } => &[],
        }
    }

    /// True for the operations that write (PUT, DELETE).
    pub fn is_write(&self) -> bool {
        !matches!(self, ClientOp::Get { .. } | ClientOp::Scan { .. })
    }

    /// True when the operation demands answers from the key's real
    /// preference list (a PR or PW above zero).
    pub fn asks_primaries(&self) -> bool {
        let (pr, pw) = match self {
            ClientOp::Get { pr, .. } => (*pr, None),
            ClientOp::Put { pw, .. } | ClientOp::Update { pw, .. } => (None, *pw),
            ClientOp::Delete { pr, pw, .. } => (*pr, *pw),
            ClientOp::Scan { .. } | ClientOp::DefineBucket { .. } => (None, None),
        };
        pr.unwrap_or(0) > 0 || pw.unwrap_or(0) > 0
    }

    pub fn name(&self) -> &'static str {
        match self {
            ClientOp::Get { .. } => "get",
            ClientOp::Put { .. } => "put",
            ClientOp::Delete { .. } => "delete",
            ClientOp::Update { update, .. } => update.name(),
            ClientOp::Scan { .. } => "scan",
            ClientOp::DefineBucket { .. } => "define bucket",
        }
    }

    /// Whether a coordinator starts the operation, forwarded, only by its
    /// forward's start-by time: a write of a last-write-wins or typed key
    /// (a Redis key), which, started late, would be stamped after writes
    /// made since through another coordinator and win over them (see
    /// `node::forward`). Writes of keys with siblings are not fenced: a
    /// late one is a concurrent sibling, never a lost write, and a fence
    /// would make them fail between nodes whose clocks are more than
    /// [`crate::node::FORWARD_START_WITHIN_MS`] apart.
    pub fn is_fenced(&self) -> bool {
        self.is_write() && crate::keyspace::policy_of(self.key()).overwrites()
    }

    /// Whether a forward of the operation may also go to a second
    /// coordinator while the first may still be applying it (a hedge):
    /// only an idempotent one that is not fenced (a write of a Redis or
    /// `lww` key: see [`ClientOp::is_fenced`]). Two
    /// coordinators of one `SET` stamp it with two clocks, and the second
    /// may stamp it after a newer `SET` it has not received yet, which then
    /// loses: a fresh-eyes user lost an acknowledged `SET` that way, to a
    /// hedged duplicate of the `SET` before it (2 rounds in 940, just after
    /// a restart, when the forwarder knew no coordinator's pace). Such a
    /// write still moves on to the next coordinator once the first is
    /// unreachable or silent past the forward timeout (availability), but
    /// only once the forward's start-by fence keeps the first from
    /// starting it (see `node::forward`); a hedge, sent while the first
    /// may still start it, would reopen that race.
    pub fn may_hedge(&self) -> bool {
        self.is_idempotent() && !self.is_fenced()
    }

    /// False when applying the operation a second time, later, could do
    /// what the client never asked: an update (see
    /// [`crate::crdt::Update::is_idempotent`]), or a delete without a
    /// context, which deletes what its coordinator reads *then* — a value
    /// written after the client's delete was answered. Such a forward is
    /// never hedged, nor retried elsewhere once sent; the client is told
    /// its outcome is unknown instead. (A write with a context supersedes
    /// exactly that context however often it runs; a blind write run twice
    /// leaves a duplicate sibling, never a lost value.) A delete of a Redis
    /// or `lww` key — Redis `DEL`, a context-less `DELETE` — is fenced
    /// ([`ClientOp::is_fenced`]): no coordinator starts it after its
    /// forwarder moved on, so a second copy runs only before the client is
    /// answered, and it may move on like a `SET` (a fresh-eyes user's `DEL`
    /// answered "may or may not have been applied" while a `SET` of the
    /// same key through the same node failed over). An increment or a push
    /// counts twice however early, and stays unretried.
    pub fn is_idempotent(&self) -> bool {
        match self {
            ClientOp::Update {
                update: crate::crdt::Update::Del,
                ..
            } => self.is_fenced(),
            ClientOp::Update { update, .. } => update.is_idempotent(),
            ClientOp::Delete { context: None, .. } => self.is_fenced(),
            _ => true,
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum ClientReply {
    /// A read's reconciled state (tombstones included; front ends hide them).
    Value(SiblingSet),
    /// A write's outcome: the new version's dot, and the context of a
    /// follow-up write — the one the client sent plus that dot, exactly what
    /// its writer has seen (never another sibling the coordinator holds).
    Written { dot: Dot, context: CausalContext },
    /// An update's reply (see [`crate::crdt::Update`]).
    Updated(crate::crdt::Reply),
    /// A scan's page: user keys (without the keyspace prefix) with their
    /// type names (`kv` for a `/kv` key), and the cursor to go on from (0:
    /// the scan is done).
    Keys {
        keys: Vec<(Vec<u8>, String)>,
        cursor: u64,
    },
    /// A bucket definition took effect on its coordinator, whose table
    /// this is (the node the client asked merges it at once).
    BucketDefined(crate::bucket::BucketTable),
}

/// Why a client operation failed — each is one sentence for the user.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, thiserror::Error)]
pub enum ClientError {
    /// A quorum was not reached. `after` is empty for a read; for a write
    /// it says what became of it — the coordinator wrote it, so it stays
    /// where it was acknowledged and spreads from there, and a retry of an
    /// increment would count it twice.
    #[error(
        "{op} needed {needed} of {replicas} replicas but only {answered} answered in time{after}"
    )]
    Unavailable {
        op: String,
        needed: usize,
        answered: usize,
        replicas: usize,
        after: String,
    },
    #[error("{0}")]
    Invalid(String),
    #[error("{0}")]
    Conflict(String),
    #[error("storage error on {node}: {message}")]
    Storage { node: String, message: String },
    /// The node's store failed; it refused the write before writing
    /// anything, so another node may safely take it.
    #[error(
        "{node} cannot write: its store failed ({reason}); it serves reads only until \
         restarted, and nothing was written"
    )]
    ReadOnly { node: String, reason: String },
    /// A forwarded write reached its coordinator (or was read off its
    /// socket, after a pause) past the forward's `start_by`: by then the
    /// forwarder may have moved on to another coordinator, so it was not
    /// started — nothing was written, and the forwarder moves on.
    #[error("{node} got the forwarded write too late to start it, and did nothing")]
    TooLate { node: String },
    /// The node shed the operation before doing anything with it: `what`
    /// (one of its queues or its operations in flight) was at its limit.
    /// Nothing was written, so the client may retry — after a pause, since
    /// an immediate retry only adds to the load that caused it.
    #[error(
        "{node} is overloaded ({what} at its limit of {limit}); nothing was done, retry shortly"
    )]
    Overloaded {
        node: String,
        what: String,
        limit: usize,
    },
    /// A CRDT update refused (wrong type, overflow, not an integer): the
    /// Redis error line, prefix included.
    #[error("{0}")]
    Refused(String),
    /// An operation that must not be applied twice was sent to `node`,
    /// which did not answer: it may or may not have been applied, and was
    /// not sent anywhere else.
    #[error(
        "{node} took the {op} but did not answer in time; it may or may not have been \
         applied (it was not retried, so it counts at most once): read the key before retrying"
    )]
    Indeterminate { op: String, node: String },
}

impl From<CrdtError> for ClientError {
    fn from(e: CrdtError) -> Self {
        match e {
            CrdtError::WrongType => ClientError::Refused(e.to_string()),
            _ => ClientError::Refused(format!("ERR {e}")),
        }
    }
}

impl From<WriteError> for ClientError {
    fn from(e: WriteError) -> Self {
        ClientError::Conflict(e.to_string())
    }
}

pub type ClientResult = Result<ClientReply, ClientError>;
