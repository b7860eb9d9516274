//! WHOWAS: a bounded memory of who went by which name (users who quit, were
//! killed, logged out or renamed).

use super::*;

/// Departures remembered in all; the oldest are forgotten first.
pub(crate) const MAX_WHOWAS: usize = 1000;

/// Departures remembered per name: only the most recent ones, so one busy
/// name cannot crowd the others out and an answer stays short.
pub(crate) const MAX_WHOWAS_PER_NAME: usize = 2;

/// The departures, by lower-cased name, with their order across names.
#[derive(Debug, Default)]
pub(super) struct Whowas {
    /// Lower-cased name → its departures, oldest first, each with its
    /// sequence number (at most [`MAX_WHOWAS_PER_NAME`]).
    by_name: HashMap<String, VecDeque<(u64, WhowasRow)>>,
    /// Sequence number and name of every departure, oldest first (at most
    /// [`MAX_WHOWAS`]; some may already be gone from `by_name`).
    order: VecDeque<(u64, String)>,
    next: u64,
}

impl Whowas {
    /// Remembers one departure.
    pub(super) fn push(&mut self, row: WhowasRow) {
        let key = row.name.to_ascii_lowercase();
        let seq = self.next;
        self.next += 1;
        let rows = self.by_name.entry(key.clone()).or_default();
        rows.push_back((seq, row));
        if rows.len() > MAX_WHOWAS_PER_NAME {
            rows.pop_front();
        }
        self.order.push_back((seq, key));
        while self.order.len() > MAX_WHOWAS {
            let Some((old, key)) = self.order.pop_front() else {
                break;
            };
            if let Some(rows) = self.by_name.get_mut(&key) {
                rows.retain(|(s, _)| *s != old);
                if rows.is_empty() {
                    self.by_name.remove(&key);
                }
            }
        }
    }

    /// Up to `count` departures from `name` (any case), newest first.
    pub(super) fn lookup(&self, name: &str, count: Option<usize>) -> Vec<WhowasRow> {
        let count = count.filter(|n| *n > 0).unwrap_or(usize::MAX);
        self.by_name
            .get(&name.to_ascii_lowercase())
            .map(|rows| {
                rows.iter()
                    .rev()
                    .take(count)
                    .map(|(_, r)| r.clone())
                    .collect()
            })
            .unwrap_or_default()
    }

    /// Departures remembered.
    #[cfg(test)]
    pub(super) fn len(&self) -> usize {
        self.by_name.values().map(VecDeque::len).sum()
    }
}

/// What WHOWAS shows of a user leaving its name at `now`.
pub(super) fn row(u: &User, now: Timestamp) -> WhowasRow {
    WhowasRow {
        name: u.name.clone(),
        ident: u.ident.clone(),
        host: u.ip.to_string().into(),
        realname: u.realname.clone(),
        at: now,
    }
}

impl Chat {
    /// A user leaves the server: WHOWAS remembers them, and the counts of
    /// invisible users and operators drop.
    pub(super) fn departed(&mut self, u: &User, now: Timestamp) {
        self.whowas.push(row(u, now));
        self.invisible_count = self
            .invisible_count
            .saturating_sub(usize::from(u.invisible));
        self.oper_count = self.oper_count.saturating_sub(usize::from(u.oper));
    }

    /// WHOWAS: who went by `name`, newest first (`count`: at most that many;
    /// `None` or 0: all that are kept).
    pub(super) fn whowas(
        &self,
        conn: ConnId,
        name: &str,
        count: Option<usize>,
        out: &mut Vec<Action>,
    ) -> Result<(), Error> {
        let rows = self.whowas.lookup(name, count);
        if rows.is_empty() {
            return Err(Error::new(ErrorCode::NoSuchUser)
                .about(name)
                .text("there was no such name"));
        }
        send(
            out,
            conn,
            Event::Whowas {
                name: name.into(),
                rows,
            },
        );
        Ok(())
    }
}
