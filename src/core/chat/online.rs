//! The names of everyone logged in, as one space-separated string in login
//! order: what `/users`, and so every line-protocol login, sends.
//!
//! Kept in step with the users (a login appends, a logout or rename edits
//! in place), so a listing costs one copy of the string. Collecting it from
//! the users at every login took a walk over all of them and a reference
//! count bumped and dropped per name: logging 5000 users in did 12.5M of
//! those, and that was most of the event loop's time.

use std::ops::Range;

/// Logged-in names in login order, separated by single spaces.
#[derive(Debug, Default)]
pub(super) struct Online {
    text: String,
}

impl Online {
    /// The list, `name name ...` (empty when nobody is logged in).
    pub(super) fn as_str(&self) -> &str {
        &self.text
    }

    /// A user logged in.
    pub(super) fn add(&mut self, name: &str) {
        if !self.text.is_empty() {
            self.text.push(' ');
        }
        self.text.push_str(name);
    }

    /// A user logged out, quit or dropped.
    pub(super) fn remove(&mut self, name: &str) {
        let Some(word) = self.find(name) else {
            return;
        };
        // The word and the space before it (or after it, for the first).
        let cut = if word.start > 0 {
            word.start - 1..word.end
        } else {
            word.start..(word.end + 1).min(self.text.len())
        };
        self.text.replace_range(cut, "");
    }

    /// A user changed name; the list keeps its place.
    pub(super) fn rename(&mut self, old: &str, new: &str) {
        if let Some(word) = self.find(old) {
            self.text.replace_range(word, new);
        }
    }

    /// Where `name` (exactly as spelled) is in the list.
    fn find(&self, name: &str) -> Option<Range<usize>> {
        let mut start = 0;
        for word in self.text.split(' ') {
            if word == name {
                return Some(start..start + word.len());
            }
            start += word.len() + 1;
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keeps_login_order_through_logouts_and_renames() {
        let mut online = Online::default();
        assert_eq!(online.as_str(), "");
        for name in ["alice", "bob", "al", "carol"] {
            online.add(name);
        }
        assert_eq!(online.as_str(), "alice bob al carol");
        online.remove("al"); // not a prefix match on "alice"
        assert_eq!(online.as_str(), "alice bob carol");
        online.rename("bob", "Robert");
        assert_eq!(online.as_str(), "alice Robert carol");
        online.remove("alice");
        assert_eq!(online.as_str(), "Robert carol");
        online.remove("carol");
        online.remove("nobody");
        assert_eq!(online.as_str(), "Robert");
        online.remove("Robert");
        assert_eq!(online.as_str(), "");
        online.add("dave");
        assert_eq!(online.as_str(), "dave");
    }
}
