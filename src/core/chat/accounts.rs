//! Accounts and logins: guests, registration, password checks (handed to
//! the workers as actions), the per-address failure budget, and what a login
//! brings (lobby, remembered rooms, waiting direct messages).

use super::*;

/// What a connection waits for from the password workers.
#[derive(Debug)]
pub(super) enum Pending {
    /// `/register`: the hash of the new password.
    Register { name: String },
    /// `/login` of an account: whether the password matched.
    Login { key: String },
}

/// How a connection logs in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Entry {
    /// A free name, no account.
    Guest,
    /// An existing account, password checked.
    Account,
    /// An account just registered.
    NewAccount,
}

/// An address's allowance of failed logins (a token bucket on simulated time).
#[derive(Debug, Clone, Copy)]
pub(super) struct Budget {
    pub(super) tokens: u32,
    /// When the last token was added (or the bucket was last full).
    pub(super) since: Timestamp,
}

impl Chat {
    /// `/login`: an account's password goes to the workers; any other free
    /// name logs in as a guest at once. Precedence: bad-name, then
    /// auth-failed, then name-taken.
    pub(super) fn login(
        &mut self,
        conn: ConnId,
        name: &str,
        password: Option<Secret>,
        now: Timestamp,
        out: &mut Vec<Action>,
    ) -> Result<(), Error> {
        if !is_user_name(name) {
            return Err(Error::new(ErrorCode::BadName).about(name));
        }
        let key = name.to_ascii_lowercase();
        let ip = self.conns.get(&conn).map(|c| c.ip);
        if let Some(account) = self.accounts.get(&key) {
            let hash = account.hash.clone();
            if let Some(wait) = ip.and_then(|ip| self.retry_after(ip, now)) {
                return Err(Error::new(ErrorCode::RateLimited).text(format!(
                    "too many failed logins from your address; try again in {} s",
                    wait.div_ceil(1000)
                )));
            }
            if let Some(state) = self.conns.get_mut(&conn) {
                state.check = Some(Check::new(Pending::Login { key }));
            }
            // A missing password is checked too, so it takes as long as a wrong one.
            out.push(Action::Auth {
                conn,
                request: AuthRequest::Verify {
                    hash: Some(hash),
                    password,
                },
            });
            return Ok(());
        }
        if self.user_names.contains_key(&key) {
            return Err(Error::new(ErrorCode::NameTaken).about(name));
        }
        let id = UserId(self.next_user);
        self.next_user += 1;
        self.store_counters(out);
        self.enter(conn, id, name.into(), Entry::Guest, now, out)
    }

    /// `/register`: checks what can be checked now, then has the password hashed.
    pub(super) fn register(
        &mut self,
        conn: ConnId,
        name: &str,
        password: Secret,
        out: &mut Vec<Action>,
    ) -> Result<(), Error> {
        if !is_user_name(name) {
            return Err(Error::new(ErrorCode::BadName).about(name));
        }
        if !PASSWORD_LEN.contains(&password.len()) {
            return Err(Error::new(ErrorCode::BadPassword));
        }
        let key = name.to_ascii_lowercase();
        if self.accounts.contains_key(&key) || self.user_names.contains_key(&key) {
            return Err(Error::new(ErrorCode::NameTaken).about(name));
        }
        if let Some(state) = self.conns.get_mut(&conn) {
            state.check = Some(Check::new(Pending::Register { name: name.into() }));
        }
        out.push(Action::Auth {
            conn,
            request: AuthRequest::Hash { password },
        });
        Ok(())
    }

    /// The hash is ready: the account is created (if the name is still free)
    /// and the connection logged in to it.
    pub(super) fn create_account(
        &mut self,
        conn: ConnId,
        name: &str,
        hash: Arc<str>,
        now: Timestamp,
        out: &mut Vec<Action>,
    ) -> Result<(), Error> {
        let key = name.to_ascii_lowercase();
        if self.accounts.contains_key(&key) || self.user_names.contains_key(&key) {
            return Err(Error::new(ErrorCode::NameTaken).about(name));
        }
        let id = UserId(self.next_user);
        self.next_user += 1;
        let name: Arc<str> = name.into();
        out.push(Action::Store(Record::Account {
            id,
            name: name.clone(),
            hash: hash.clone(),
            created: now,
        }));
        self.accounts.insert(
            key,
            Account {
                id,
                name: name.clone(),
                hash,
                rooms: Vec::new(),
                inbox: VecDeque::new(),
            },
        );
        self.enter(conn, id, name, Entry::NewAccount, now, out)
    }

    /// Logs a connection in as user `id`: `OK`, who is online, the lobby,
    /// then for an account its remembered rooms and the direct messages that
    /// waited for it.
    pub(super) fn enter(
        &mut self,
        conn: ConnId,
        id: UserId,
        name: Arc<str>,
        how: Entry,
        now: Timestamp,
        out: &mut Vec<Action>,
    ) -> Result<(), Error> {
        let registered = how != Entry::Guest;
        let Some(state) = self.conns.get_mut(&conn) else {
            return Ok(());
        };
        state.user = Some(id);
        let (ident, realname) = state
            .profile
            .clone()
            .unwrap_or_else(|| (name.clone(), "".into()));
        let (ip, irc) = (state.ip, state.irc);
        let key = name.to_ascii_lowercase();
        self.user_names.insert(key.clone(), id);
        self.online.add(&name);
        self.users.insert(
            id,
            User {
                mask: mask(&name, &ident, ip),
                name: name.clone(),
                registered,
                conn,
                ip,
                ident,
                realname,
                away: None,
                oper: false,
                invisible: false,
                wallops: false,
                logged_in_at: now,
                rooms: Vec::new(),
                current: None,
                irc,
                bot: false,
            },
        );
        self.max_users = self.max_users.max(self.users.len());
        self.monitor_online(&key, out);
        let ok = match how {
            Entry::NewAccount => OkReply::Register { name, id },
            Entry::Guest | Entry::Account => OkReply::Login { name, id },
        };
        send(out, conn, Event::Ok(ok));
        // IRC clients get the counts instead of the user list, and join
        // rooms themselves.
        let lobby = if irc {
            self.lusers(conn, out);
            None
        } else {
            self.handle_user(conn, id, Command::Users, now, out)?;
            self.config
                .lobby
                .as_deref()
                .and_then(|l| self.find_room(l).ok())
        };
        if let Some(lobby) = lobby {
            self.join_room(id, lobby, out)?;
        }
        if !registered {
            return Ok(());
        }
        let remembered = self
            .accounts
            .get(&key)
            .map(|a| a.rooms.clone())
            .unwrap_or_default();
        for room in remembered {
            if !self
                .rooms
                .get(&room)
                .is_some_and(|r| r.members.contains_key(&id))
            {
                // A room over the per-user limit is skipped, not an error.
                let _ = self.join_room(id, room, out);
            }
        }
        if let (Some(lobby), Some(user)) = (lobby, self.users.get_mut(&id)) {
            user.current = Some(lobby);
        }
        let inbox = self
            .accounts
            .get_mut(&key)
            .map(|a| std::mem::take(&mut a.inbox))
            .unwrap_or_default();
        if !inbox.is_empty() {
            let ids = inbox.iter().map(|dm| dm.id).collect();
            let to = self.users[&id].name.clone();
            for dm in inbox {
                send(
                    out,
                    conn,
                    Event::Dm {
                        mask: Message::stored_mask(&dm.from),
                        extra: None,
                        from: dm.from,
                        to: to.clone(),
                        id: dm.id,
                        at: dm.at,
                        text: dm.text,
                    },
                );
            }
            out.push(Action::Store(Record::DmsDelivered { ids }));
        }
        Ok(())
    }

    /// How long (ms) `ip` must wait before its next login attempt, if it has
    /// used up its failures.
    pub(super) fn retry_after(&mut self, ip: IpAddr, now: Timestamp) -> Option<u64> {
        let (burst, refill) = (
            self.config.login_failures,
            self.config.login_failure_refill_ms.max(1),
        );
        let budget = self.failures.get_mut(&ip)?;
        refill_budget(budget, burst, refill, now);
        (budget.tokens == 0).then(|| (budget.since.0 + refill).saturating_sub(now.0))
    }

    /// Takes one failure from `ip`'s allowance.
    pub(super) fn record_failure(&mut self, ip: IpAddr, now: Timestamp) {
        let (burst, refill) = (
            self.config.login_failures,
            self.config.login_failure_refill_ms.max(1),
        );
        if !self.failures.contains_key(&ip) && self.failures.len() >= MAX_TRACKED_ADDRESSES {
            // Forget the addresses that have fully recovered.
            self.failures.retain(|_, b| {
                refill_budget(b, burst, refill, now);
                b.tokens < burst
            });
            if self.failures.len() >= MAX_TRACKED_ADDRESSES {
                return;
            }
        }
        let budget = self.failures.entry(ip).or_insert(Budget {
            tokens: burst,
            since: now,
        });
        refill_budget(budget, burst, refill, now);
        if budget.tokens == burst {
            budget.since = now;
        }
        budget.tokens = budget.tokens.saturating_sub(1);
    }

    /// Records the id counters (for ids that leave no other record).
    pub(super) fn store_counters(&self, out: &mut Vec<Action>) {
        out.push(Action::Store(Record::Counters {
            next_user: self.next_user,
            next_msg: self.next_msg,
        }));
    }
}

/// Adds the failures forgiven since `budget.since`.
fn refill_budget(budget: &mut Budget, burst: u32, refill_ms: u64, now: Timestamp) {
    let earned = now.0.saturating_sub(budget.since.0) / refill_ms;
    if earned > 0 {
        budget.tokens = (u64::from(budget.tokens) + earned).min(u64::from(burst)) as u32;
        budget.since = Timestamp(budget.since.0 + earned * refill_ms);
    }
}
