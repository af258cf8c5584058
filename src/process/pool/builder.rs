//! How a pool is configured before it starts.

use super::stats::Counters;
use super::{Pool, Shared, State};
use crate::error::{Error, Result};
use crate::process::Command;
use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Condvar, Mutex};
use std::time::Duration;

/// How to build a [`Pool`]: [`Pool::builder`], then [`build`](PoolBuilder::build).
#[derive(Debug, Clone)]
pub struct PoolBuilder {
    pub(super) cmd: Command,
    pub(super) size: usize,
    pub(super) timeout: Option<Duration>,
    pub(super) retries: u32,
    pub(super) max_in_flight: usize,
    pub(super) lazy: bool,
}

impl PoolBuilder {
    /// How many workers (at least 1; default 4).
    pub fn size(mut self, n: usize) -> Self {
        self.size = n;
        self
    }

    /// The ring size of each direction of each worker's channel (default
    /// [`DEFAULT_RING_CAPACITY`](crate::process::DEFAULT_RING_CAPACITY), or what the command says).
    /// A request or reply must fit in half of it.
    pub fn ring_capacity(mut self, bytes: usize) -> Self {
        self.cmd.ring_capacity(bytes);
        self
    }

    /// How long a task may take from its dispatch to its reply (default: no limit). A task
    /// that takes longer fails with [`Error::Timeout`], and its worker is killed and
    /// replaced. The time counts a fresh worker's start-up.
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = Some(timeout);
        self
    }

    /// How many times a task whose worker died under it is run again on a new worker
    /// (default 1).
    pub fn retries(mut self, k: u32) -> Self {
        self.retries = k;
        self
    }

    /// How many tasks may be dispatched to workers at once (at least 1; default no limit
    /// beyond one per worker).
    pub fn max_in_flight(mut self, m: usize) -> Self {
        self.max_in_flight = m;
        self
    }

    /// What carries tasks and replies between the pool and each worker (default
    /// [`Kind::Shm`](crate::transport::Kind::Shm)); see
    /// [`Command::transport`](super::Command::transport).
    pub fn transport(mut self, kind: crate::transport::Kind) -> Self {
        self.cmd.transport(kind);
        self
    }

    /// Whether to spawn each worker only when a task first needs it, instead of at build
    /// (default false).
    pub fn lazy(mut self, lazy: bool) -> Self {
        self.lazy = lazy;
        self
    }

    /// Starts the pool; unless lazy, spawns its workers (concurrently) and waits for them.
    ///
    /// # Errors
    /// `InvalidArgument` for a size or `max_in_flight` of 0 or a zero timeout; the first
    /// spawn error ([`Worker::spawn`](crate::process::Worker::spawn)'s), after which no worker is left running.
    pub fn build(self) -> Result<Pool> {
        let wrong = if self.size == 0 {
            Some("size(0): a pool needs at least 1 worker")
        } else if self.max_in_flight == 0 {
            Some("max_in_flight(0): a pool needs room for at least 1 task in flight")
        } else if self.timeout == Some(Duration::ZERO) {
            Some("timeout(0 s): a task's timeout must be longer than zero")
        } else {
            None
        };
        if let Some(why) = wrong {
            return Err(Error::InvalidArgument(format!("the pool's {why}")));
        }
        let ids: Vec<u64> = (1..=self.size as u64).collect();
        let shared = Arc::new(Shared {
            state: Mutex::new(State {
                queue: VecDeque::new(),
                busy: 0,
                in_flight: 0,
                max_in_flight: self.max_in_flight,
                target: self.size,
                live: self.size,
                shutdown: false,
                next_slot: self.size as u64,
                pids: HashMap::new(),
                counters: Counters::default(),
            }),
            work: Condvar::new(),
            cmd: self.cmd,
            timeout: self.timeout,
            retries: self.retries,
            lazy: self.lazy,
        });
        let pool = Pool {
            shared,
            slots: Mutex::new(Vec::new()),
        };
        // On error, dropping the pool kills and reaps the workers that did spawn.
        pool.start_slots(&ids, !self.lazy)?;
        Ok(pool)
    }
}
