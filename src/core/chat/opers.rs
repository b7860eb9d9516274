//! Server operators and user modes: `OPER`, `KILL`, `WALLOPS`, and the
//! user modes `+i`, `+w` and `+o`.
//!
//! Operator logins come from the command line (`--oper NAME:PASSWORD`) and
//! their passwords are plain text; they are compared in constant time, and
//! failures count against the address's failed-login allowance like failed
//! account logins.

use super::*;
use crate::config::OperLogin;

/// A kill reason is cut to this many characters.
const MAX_KILL_REASON: usize = 390;

impl Chat {
    /// `OPER NAME PASSWORD`: on a match with a `--oper` login the user
    /// becomes a server operator and hears `Ok(Oper)` and `UserMode +o`.
    pub(super) fn oper(
        &mut self,
        conn: ConnId,
        user: UserId,
        name: &str,
        password: &Secret,
        now: Timestamp,
        out: &mut Vec<Action>,
    ) -> Result<(), Error> {
        if self.config.opers.is_empty() {
            return Err(Error::new(ErrorCode::NotAvailable)
                .about("oper")
                .text("this server has no operators"));
        }
        let ip = self.conns.get(&conn).map(|c| c.ip);
        if let Some(wait) = ip.and_then(|ip| self.retry_after(ip, now)) {
            return Err(Error::new(ErrorCode::RateLimited).text(format!(
                "too many failed logins from your address; try again in {} s",
                wait.div_ceil(1000)
            )));
        }
        if !matches_any(&self.config.opers, name, password) {
            if let Some(ip) = ip {
                self.record_failure(ip, now);
            }
            return Err(Error::new(ErrorCode::AuthFailed));
        }
        send(out, conn, Event::Ok(OkReply::Oper));
        let grant = UserModeChange {
            add: true,
            mode: UserMode::Oper,
        };
        self.apply_user_modes(user, &[grant], true, out);
        Ok(())
    }

    /// `KILL NAME [REASON]` (operators only): the user is told `Bye` and
    /// disconnected; those sharing a room with them hear them go offline
    /// with `Killed (OPER (REASON))`.
    pub(super) fn kill(
        &mut self,
        user: UserId,
        name: &str,
        reason: Option<String>,
        now: Timestamp,
        out: &mut Vec<Action>,
    ) -> Result<(), Error> {
        let killer = &self.users[&user];
        if !killer.oper {
            return Err(Error::new(ErrorCode::NoPrivileges));
        }
        let target = self
            .user_names
            .get(&name.to_ascii_lowercase())
            .copied()
            .ok_or_else(|| Error::new(ErrorCode::NoSuchUser).about(name))?;
        let reason: String = reason
            .filter(|r| !r.is_empty())
            .unwrap_or_else(|| "no reason given".into())
            .chars()
            .take(MAX_KILL_REASON)
            .collect();
        let text: Arc<str> = format!("Killed ({} ({reason}))", killer.name).into();
        let conn = self.users[&target].conn;
        self.conns.remove(&conn);
        self.remove_user(target, Some(text.clone()), now, out);
        send(out, conn, Event::Bye { reason: text });
        out.push(Action::Close { conn });
        Ok(())
    }

    /// `WALLOPS TEXT` (operators only): to every user with `+w`.
    pub(super) fn wallops(
        &mut self,
        user: UserId,
        text: String,
        out: &mut Vec<Action>,
    ) -> Result<(), Error> {
        let u = &self.users[&user];
        if !u.oper {
            return Err(Error::new(ErrorCode::NoPrivileges));
        }
        let to: Vec<ConnId> = self
            .users
            .values()
            .filter(|u| u.wallops)
            .map(|u| u.conn)
            .collect();
        if !to.is_empty() {
            out.push(Action::Fanout {
                to,
                event: Event::Wallops {
                    from: u.name.clone(),
                    mask: u.mask.clone(),
                    text: text.into(),
                },
            });
        }
        Ok(())
    }

    /// No changes: answers with the user's modes. Otherwise applies them
    /// (`+o` is ignored: only `OPER` grants it) and tells the user what
    /// changed.
    pub(super) fn user_mode(
        &mut self,
        conn: ConnId,
        user: UserId,
        changes: &[UserModeChange],
        out: &mut Vec<Action>,
    ) {
        if !changes.is_empty() {
            return self.apply_user_modes(user, changes, false, out);
        }
        let Some(u) = self.users.get(&user) else {
            return;
        };
        let mut modes = String::from("+");
        for (on, letter) in [
            (u.bot, 'B'),
            (u.invisible, 'i'),
            (u.oper, 'o'),
            (u.wallops, 'w'),
        ] {
            if on {
                modes.push(letter);
            }
        }
        send(
            out,
            conn,
            Event::UserModes {
                modes: modes.into(),
            },
        );
    }

    /// Applies user mode changes (`+o` only if `grant`), keeping the LUSERS
    /// counts in step, and sends the user `UserMode` with those that
    /// changed something.
    fn apply_user_modes(
        &mut self,
        user: UserId,
        changes: &[UserModeChange],
        grant: bool,
        out: &mut Vec<Action>,
    ) {
        let Some(u) = self.users.get_mut(&user) else {
            return;
        };
        let (mut change, mut sign) = (String::new(), None);
        for c in changes {
            let (flag, count) = match c.mode {
                UserMode::Invisible => (&mut u.invisible, Some(&mut self.invisible_count)),
                UserMode::Wallops => (&mut u.wallops, None),
                UserMode::Oper => (&mut u.oper, Some(&mut self.oper_count)),
                UserMode::Bot => (&mut u.bot, None),
            };
            if *flag == c.add || c.mode == UserMode::Oper && c.add && !grant {
                continue;
            }
            *flag = c.add;
            if let Some(count) = count {
                *count = if c.add {
                    *count + 1
                } else {
                    count.saturating_sub(1)
                };
            }
            if sign != Some(c.add) {
                change.push(if c.add { '+' } else { '-' });
                sign = Some(c.add);
            }
            change.push(c.mode.letter());
        }
        if !change.is_empty() {
            let (conn, name) = (u.conn, u.name.clone());
            send(
                out,
                conn,
                Event::UserMode {
                    name,
                    change: change.into(),
                },
            );
        }
    }
}

/// Whether `name` and `password` match one of `logins`. Every login is
/// checked in full, so the time taken tells neither which names exist nor
/// how much of a password was right.
fn matches_any(logins: &[OperLogin], name: &str, password: &Secret) -> bool {
    let mut found = false;
    for login in logins {
        let name_ok = constant_time_eq(login.name.as_bytes(), name.as_bytes());
        let password_ok = constant_time_eq(
            login.password.expose().as_bytes(),
            password.expose().as_bytes(),
        );
        found |= name_ok & password_ok;
    }
    found
}

/// Compares two byte strings in time that depends only on the longer one's
/// length, not on where they differ.
fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    let len = a.len().max(b.len());
    let mut diff = u8::from(a.len() != b.len());
    for i in 0..len {
        let x = a.get(i).copied().unwrap_or(0);
        let y = b.get(i).copied().unwrap_or(0);
        diff |= std::hint::black_box(x ^ y);
    }
    diff == 0
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::CoreConfig;
    use crate::core::tests::{login_at, run_at};

    const T0: Timestamp = Timestamp(1_000_000);

    fn chat() -> Chat {
        Chat::new(CoreConfig {
            lobby: None,
            opers: vec!["boss:s3cret".parse().unwrap()],
            ..CoreConfig::default()
        })
    }

    fn login(chat: &mut Chat, conn: u64, name: &str) {
        login_at(chat, conn, name, T0);
    }

    fn run(chat: &mut Chat, conn: u64, cmd: Command) -> Vec<Action> {
        run_at(chat, conn, cmd, T0)
    }

    fn oper(password: &str) -> Command {
        Command::Oper {
            name: "boss".into(),
            password: Secret::new(password),
        }
    }

    fn error_of(out: &[Action]) -> Option<ErrorCode> {
        out.iter().find_map(|a| match a {
            Action::Send {
                event: Event::Error(e),
                ..
            } => Some(e.code),
            _ => None,
        })
    }

    #[test]
    fn oper_needs_the_right_password_and_grants_plus_o() {
        let mut chat = chat();
        login(&mut chat, 1, "alice");
        let out = run(&mut chat, 1, oper("wrong"));
        assert_eq!(error_of(&out), Some(ErrorCode::AuthFailed));
        assert!(!chat.users.values().any(|u| u.oper));
        let out = run(&mut chat, 1, oper("s3cret"));
        assert!(out.iter().any(|a| matches!(
            a,
            Action::Send { event: Event::UserMode { change, .. }, .. } if &**change == "+o"
        )));
        assert_eq!(chat.oper_count, 1);
        // `-o` drops it, `+o` does not bring it back.
        let drop = |add| Command::UserMode {
            changes: vec![UserModeChange {
                add,
                mode: UserMode::Oper,
            }],
        };
        run(&mut chat, 1, drop(false));
        run(&mut chat, 1, drop(true));
        assert_eq!(chat.oper_count, 0);
        assert!(!chat.users.values().any(|u| u.oper));
    }

    #[test]
    fn kill_and_wallops_are_for_operators_only() {
        let mut chat = chat();
        login(&mut chat, 1, "alice");
        login(&mut chat, 2, "bob");
        let kill = Command::Kill {
            name: "alice".into(),
            reason: Some("spam".into()),
        };
        let out = run(&mut chat, 2, kill.clone());
        assert_eq!(error_of(&out), Some(ErrorCode::NoPrivileges));
        let wallops = Command::Wallops { text: "hi".into() };
        let out = run(&mut chat, 2, wallops);
        assert_eq!(error_of(&out), Some(ErrorCode::NoPrivileges));
        run(&mut chat, 2, oper("s3cret"));
        let out = run(&mut chat, 2, kill);
        assert!(out.contains(&Action::Close { conn: ConnId(1) }));
        assert!(!chat.user_names.contains_key("alice"));
        // Alice is remembered by WHOWAS.
        let out = run(
            &mut chat,
            2,
            Command::Whowas {
                name: "ALICE".into(),
                count: None,
            },
        );
        assert!(out.iter().any(|a| matches!(
            a,
            Action::Send { event: Event::Whowas { rows, .. }, .. } if &*rows[0].name == "alice"
        )));
    }

    #[test]
    fn whowas_memory_is_bounded() {
        let mut w = super::super::whowas::Whowas::default();
        let row = |n: usize| WhowasRow {
            name: format!("n{}", n % 1500).into(),
            ident: "i".into(),
            host: "h".into(),
            realname: "r".into(),
            at: T0,
        };
        for n in 0..5000 {
            w.push(row(n));
        }
        assert!(w.len() <= super::super::whowas::MAX_WHOWAS);
        assert!(w.lookup("n1", None).len() <= super::super::whowas::MAX_WHOWAS_PER_NAME);
        assert_eq!(w.lookup("nobody", None), Vec::new());
    }
}
