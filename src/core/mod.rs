//! The pure state machine: users, rooms and messages.
//!
//! No sockets, no clock, no disk, no randomness: every input is a connection
//! id, a parsed [`Command`] and the current [`Timestamp`]; every output is a
//! list of [`Action`]s (events addressed to connection ids, and closes). The
//! reactor applies them; tests drive [`Chat`] directly with simulated time.

mod chat;
mod command;
mod event;
mod model;
mod record;

pub(crate) use chat::wildcard;
pub use chat::{Chat, Counts};
pub use command::{
    Command, MAX_KEY, MAX_LIST, MAX_MASK, MaskList, ModeChange, MonitorOp, RoomMode, UserMode,
    UserModeChange,
};
pub use event::{
    Action, AuthOutcome, AuthRequest, Error, ErrorCode, Event, Extra, OkReply, UserInfo, WhoRow,
    WhowasRow,
};
pub use model::{ConnId, MaskEntry, Message, MsgId, RoomId, Secret, Timestamp, UserId, user_mask};
pub use record::{Record, Snapshot, StoredAccount, StoredDm, StoredRoom};

#[cfg(test)]
mod tests;
