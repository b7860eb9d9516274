//! Password hashing off the event loop.
//!
//! argon2id costs tens of milliseconds of CPU per hash on purpose, far too long
//! for the reactor thread. A small pool of worker threads takes jobs from a
//! channel, and every finished job wakes the reactor through a [`mio::Waker`],
//! which then collects the results with [`AuthPool::finished`].

use std::collections::VecDeque;
use std::fmt;
use std::sync::mpsc::{self, Receiver, Sender};
use std::sync::{Arc, Mutex, PoisonError};
use std::thread::JoinHandle;

use argon2::password_hash::{
    PasswordHash, PasswordHasher, PasswordVerifier, SaltString, rand_core::OsRng,
};
use argon2::{Algorithm, Argon2, Params, Version};
use log::{error, warn};
use mio::Waker;

use crate::core::{AuthOutcome, AuthRequest, ConnId};

/// One job: what to hash or check, for which connection.
#[derive(Debug)]
struct Job {
    conn: ConnId,
    request: AuthRequest,
}

/// A finished job.
#[derive(Debug)]
pub struct Finished {
    /// The connection that asked.
    pub conn: ConnId,
    /// What came out.
    pub outcome: AuthOutcome,
}

/// The pool could not start.
#[derive(Debug)]
pub enum AuthError {
    /// A worker thread could not be spawned.
    Spawn(std::io::Error),
    /// The argon2 parameters are invalid.
    Params(String),
}

impl fmt::Display for AuthError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            AuthError::Spawn(e) => write!(f, "cannot start a password worker: {e}"),
            AuthError::Params(e) => write!(f, "bad argon2 parameters: {e}"),
        }
    }
}

impl std::error::Error for AuthError {}

/// Worker threads that hash and verify passwords.
pub struct AuthPool {
    jobs: Option<Sender<Job>>,
    done: Arc<Mutex<VecDeque<Finished>>>,
    workers: Vec<JoinHandle<()>>,
}

impl fmt::Debug for AuthPool {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AuthPool")
            .field("workers", &self.workers.len())
            .finish()
    }
}

impl AuthPool {
    /// Starts `threads` workers (at least one) hashing with argon2id at
    /// `memory_kib` KiB and `iterations` passes; `waker` is woken after every job.
    pub fn new(
        threads: usize,
        memory_kib: u32,
        iterations: u32,
        waker: Arc<Waker>,
    ) -> Result<Self, AuthError> {
        let params = Params::new(memory_kib, iterations, 1, None)
            .map_err(|e| AuthError::Params(e.to_string()))?;
        let argon = Argon2::new(Algorithm::Argon2id, Version::V0x13, params);
        // A hash of nothing in particular with the same cost: verifying against it
        // takes as long as a real check, so an unknown name answers no faster.
        let dummy = argon
            .hash_password(b"no such account", &SaltString::generate(&mut OsRng))
            .map_err(|e| AuthError::Params(e.to_string()))?
            .to_string();
        let (tx, rx) = mpsc::channel::<Job>();
        let rx = Arc::new(Mutex::new(rx));
        let done = Arc::new(Mutex::new(VecDeque::new()));
        let mut workers = Vec::new();
        for i in 0..threads.max(1) {
            let worker = Worker {
                argon: argon.clone(),
                dummy: dummy.clone(),
                jobs: rx.clone(),
                done: done.clone(),
                waker: waker.clone(),
            };
            let handle = std::thread::Builder::new()
                .name(format!("auth-{i}"))
                .spawn(move || worker.run())
                .map_err(AuthError::Spawn)?;
            workers.push(handle);
        }
        Ok(AuthPool {
            jobs: Some(tx),
            done,
            workers,
        })
    }

    /// Queues a job. There is at most one per connection, so the queue is
    /// bounded by the connection limit.
    pub fn submit(&self, conn: ConnId, request: AuthRequest) {
        let sent = self.jobs.as_ref().map(|tx| tx.send(Job { conn, request }));
        if !matches!(sent, Some(Ok(()))) {
            error!(
                "password workers are gone; conn {} gets no answer",
                conn.0 >> 32
            );
        }
    }

    /// Takes every finished job.
    pub fn finished(&self) -> Vec<Finished> {
        let mut done = self.done.lock().unwrap_or_else(PoisonError::into_inner);
        done.drain(..).collect()
    }
}

impl Drop for AuthPool {
    fn drop(&mut self) {
        // Closing the channel ends every worker after its current job.
        self.jobs = None;
        for handle in self.workers.drain(..) {
            if handle.join().is_err() {
                warn!("a password worker panicked");
            }
        }
    }
}

/// One worker thread's state.
struct Worker {
    argon: Argon2<'static>,
    dummy: String,
    jobs: Arc<Mutex<Receiver<Job>>>,
    done: Arc<Mutex<VecDeque<Finished>>>,
    waker: Arc<Waker>,
}

impl Worker {
    fn run(self) {
        loop {
            let job = {
                let rx = self.jobs.lock().unwrap_or_else(PoisonError::into_inner);
                rx.recv()
            };
            let Ok(job) = job else {
                return;
            };
            let outcome = self.work(job.request);
            self.done
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .push_back(Finished {
                    conn: job.conn,
                    outcome,
                });
            if let Err(e) = self.waker.wake() {
                error!("cannot wake the reactor: {e}");
            }
        }
    }

    fn work(&self, request: AuthRequest) -> AuthOutcome {
        match request {
            AuthRequest::Hash { password } => {
                match self.argon.hash_password(
                    password.expose().as_bytes(),
                    &SaltString::generate(&mut OsRng),
                ) {
                    Ok(hash) => AuthOutcome::Hashed(hash.to_string().into()),
                    Err(e) => {
                        error!("hashing failed: {e}");
                        AuthOutcome::Failed
                    }
                }
            }
            AuthRequest::Verify { hash, password } => {
                let password = password.as_ref().map_or("", |p| p.expose());
                let ok = hash.is_some() && !password.is_empty();
                let hash_text = hash.as_deref().unwrap_or(&self.dummy);
                let matches = match PasswordHash::new(hash_text) {
                    Ok(parsed) => self
                        .argon
                        .verify_password(password.as_bytes(), &parsed)
                        .is_ok(),
                    Err(e) => {
                        error!("stored hash is not a PHC string: {e}");
                        false
                    }
                };
                AuthOutcome::Verified(ok && matches)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::{Duration, Instant};

    use mio::{Events, Poll, Token};

    use super::*;
    use crate::core::Secret;

    /// Waits (bounded) for the pool to finish one job.
    fn one_result(poll: &mut Poll, pool: &AuthPool) -> Finished {
        let deadline = Instant::now() + Duration::from_secs(20);
        let mut events = Events::with_capacity(4);
        loop {
            if let Some(done) = pool.finished().pop() {
                return done;
            }
            assert!(Instant::now() < deadline, "no answer from the pool");
            poll.poll(&mut events, Some(Duration::from_millis(100)))
                .unwrap();
        }
    }

    #[test]
    fn hashes_and_verifies_off_the_calling_thread() {
        let mut poll = Poll::new().unwrap();
        let waker = Arc::new(Waker::new(poll.registry(), Token(0)).unwrap());
        // Cheap parameters: this tests the plumbing, not argon2.
        let pool = AuthPool::new(1, 1024, 1, waker).unwrap();
        pool.submit(
            ConnId(7),
            AuthRequest::Hash {
                password: Secret::new("correct horse"),
            },
        );
        let done = one_result(&mut poll, &pool);
        assert_eq!(done.conn, ConnId(7));
        let AuthOutcome::Hashed(hash) = done.outcome else {
            panic!("{:?}", done.outcome);
        };
        assert!(hash.starts_with("$argon2id$"), "{hash}");
        assert!(!hash.contains("correct horse"));
        let check = |password: Option<&str>, hash: Option<Arc<str>>| AuthRequest::Verify {
            hash,
            password: password.map(Secret::new),
        };
        let cases = [
            (check(Some("correct horse"), Some(hash.clone())), true),
            (check(Some("wrong horse"), Some(hash.clone())), false),
            (check(None, Some(hash.clone())), false),
            (check(Some("correct horse"), None), false),
            (check(Some("x"), Some("not a phc string".into())), false),
        ];
        for (request, expected) in cases {
            pool.submit(ConnId(8), request);
            let done = one_result(&mut poll, &pool);
            assert_eq!(done.outcome, AuthOutcome::Verified(expected));
        }
    }

    #[test]
    fn secrets_do_not_show_in_debug_output() {
        let request = AuthRequest::Hash {
            password: Secret::new("hunter2-hunter2"),
        };
        assert!(!format!("{request:?}").contains("hunter2"));
    }
}
