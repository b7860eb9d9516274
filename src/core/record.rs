//! What the core asks to be made durable, and what it is restored from.
//!
//! The core never touches the database: it emits [`Record`]s as actions, and
//! the reactor writes all records of one loop iteration in one transaction
//! before any byte of that iteration reaches a socket. At start-up the daemon
//! loads a [`Snapshot`] and builds the core from it.

use std::sync::Arc;

use super::model::{Message, MsgId, RoomId, Timestamp, UserId};

/// One change to make durable.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Record {
    /// A new account (user id shared with the user it logs in as).
    Account {
        /// Its user id.
        id: UserId,
        /// The name as registered.
        name: Arc<str>,
        /// The argon2id hash in PHC string form (never the password).
        hash: Arc<str>,
        /// When it was registered.
        created: Timestamp,
    },
    /// A new room.
    Room {
        /// Its id.
        id: RoomId,
        /// Its name, `#` included.
        name: Arc<str>,
        /// Its topic.
        topic: Arc<str>,
        /// When it was created.
        created: Timestamp,
    },
    /// A room's topic changed.
    Topic {
        /// The room.
        room: RoomId,
        /// The new topic.
        topic: Arc<str>,
    },
    /// A message said in a room.
    Message(Arc<Message>),
    /// A direct message.
    Dm {
        /// Its id.
        id: MsgId,
        /// The sender's user id.
        from: UserId,
        /// The sender's name.
        from_name: Arc<str>,
        /// The recipient's user id.
        to: UserId,
        /// When it was sent.
        at: Timestamp,
        /// What it says.
        text: Arc<str>,
        /// True while it waits for an offline account to log in.
        pending: bool,
    },
    /// Stored direct messages that have now been delivered.
    DmsDelivered {
        /// Their ids.
        ids: Vec<MsgId>,
    },
    /// An account joined a room (remembered across logins and restarts).
    Joined {
        /// The account.
        user: UserId,
        /// The room.
        room: RoomId,
    },
    /// An account left a room.
    Left {
        /// The account.
        user: UserId,
        /// The room.
        room: RoomId,
    },
    /// Ids handed out so far, so none is reused after a restart (guests and
    /// broadcasts consume ids without leaving another record).
    Counters {
        /// The next user id.
        next_user: u64,
        /// The next message id.
        next_msg: u64,
    },
}

/// An account as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredAccount {
    /// Its user id.
    pub id: UserId,
    /// The name as registered.
    pub name: String,
    /// The argon2id PHC hash.
    pub hash: String,
    /// When it was registered.
    pub created: Timestamp,
    /// Rooms it is in, in the order it joined them.
    pub rooms: Vec<RoomId>,
}

/// A room as stored, with its most recent messages.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredRoom {
    /// Its id.
    pub id: RoomId,
    /// Its name, `#` included.
    pub name: String,
    /// Its topic.
    pub topic: String,
    /// When it was created.
    pub created: Timestamp,
    /// The most recent messages, oldest first.
    pub history: Vec<Message>,
}

/// A direct message waiting for its recipient.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredDm {
    /// Its id.
    pub id: MsgId,
    /// The sender's name.
    pub from_name: String,
    /// The recipient (an account).
    pub to: UserId,
    /// When it was sent.
    pub at: Timestamp,
    /// What it says.
    pub text: String,
}

/// Everything the core is rebuilt from at start-up.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Snapshot {
    /// Every account.
    pub accounts: Vec<StoredAccount>,
    /// Every room, by id.
    pub rooms: Vec<StoredRoom>,
    /// Undelivered direct messages, oldest first.
    pub pending_dms: Vec<StoredDm>,
    /// The next user id (1 for a new database).
    pub next_user: u64,
    /// The next room id.
    pub next_room: u64,
    /// The next message id.
    pub next_msg: u64,
}
