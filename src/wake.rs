//! Waking many tasks of one thread for one event from another.
//!
//! Every connection of an actix worker lives on that worker's thread, and the event they all
//! wait for, the next tick, comes from another: the feed's. Tokio's cross-thread primitives
//! (`watch`, `Notify`) serve any thread, so each waiting task pays for that on every wait: a
//! lock to register in the shared waiter list, and, when the event comes, a wake pushed onto
//! its thread's run queue from another thread (another lock), per task.
//!
//! The cure is to cross threads once per thread: one small task per worker waits on the
//! shared primitive, and the connections of that worker wait on a [`Waiters`] list that lives
//! on the thread, with no lock and no atomic shared with another core. The feed's relay
//! (`feed/local.rs`) is built on it.

use std::cell::{Cell, RefCell};
use std::task::{Context, Waker};

/// The tasks of one thread waiting for the next wake-up, each at most once.
#[derive(Default)]
pub(crate) struct Waiters {
    /// Bumped by every [`Waiters::wake_all`]: a registration is for one version.
    version: Cell<u64>,
    list: RefCell<Vec<Waker>>,
    /// Places in `list` given up by tasks that stopped waiting, reused by the next to wait:
    /// the list never holds more than the tasks waiting at once.
    free: RefCell<Vec<usize>>,
    /// The last wake-up's list, kept for its capacity: no allocation per wake-up once warm.
    spare: RefCell<Vec<Waker>>,
}

/// Where one waiting task's waker sits in a [`Waiters`] list, and for which version, so that
/// a task polled twice before the next wake-up registers once. Start with `None`.
pub(crate) type Registration = Option<(u64, usize)>;

impl Waiters {
    /// How many wake-ups there have been.
    pub(crate) fn version(&self) -> u64 {
        self.version.get()
    }

    /// Wakes `cx`'s task at the next [`Waiters::wake_all`]. `at` remembers the registration:
    /// the same task registers once per wake-up however often it is polled, and a task whose
    /// waker changed replaces its old one.
    pub(crate) fn register(&self, at: &mut Registration, cx: &Context<'_>) {
        let version = self.version.get();
        let mut list = self.list.borrow_mut();
        match *at {
            Some((registered, slot)) if registered == version => {
                if !list[slot].will_wake(cx.waker()) {
                    list[slot] = cx.waker().clone();
                }
            }
            _ => match self.free.borrow_mut().pop() {
                Some(slot) => {
                    list[slot] = cx.waker().clone();
                    *at = Some((version, slot));
                }
                None => {
                    *at = Some((version, list.len()));
                    list.push(cx.waker().clone());
                }
            },
        }
    }

    /// The task registered at `at` no longer waits (its connection is gone): its waker, and
    /// with it the task's memory, is let go now rather than at the next wake-up, and its
    /// place is reused. Without this, connections that open and close between two ticks
    /// would each leave a task behind until the tick.
    pub(crate) fn unregister(&self, at: &mut Registration) {
        if let Some((registered, slot)) = at.take()
            && registered == self.version.get()
        {
            self.list.borrow_mut()[slot] = Waker::noop().clone();
            self.free.borrow_mut().push(slot);
        }
    }

    /// Wakes every registered task (each is scheduled on this thread, not run here) and starts
    /// a new version.
    pub(crate) fn wake_all(&self) {
        // Swap the lists first: a task polled after this must find an empty list.
        let mut woken = self.spare.take();
        std::mem::swap(&mut woken, &mut self.list.borrow_mut());
        self.free.borrow_mut().clear();
        self.version.set(self.version.get() + 1);
        for waker in woken.drain(..) {
            waker.wake();
        }
        *self.spare.borrow_mut() = woken;
    }

    /// How many tasks wait now.
    #[cfg(test)]
    pub(crate) fn len(&self) -> usize {
        self.list.borrow().len()
    }
}

/// A waker that counts how often it was woken, for tests.
#[cfg(test)]
#[derive(Default)]
pub(crate) struct Counting(pub(crate) std::sync::atomic::AtomicUsize);

#[cfg(test)]
impl std::task::Wake for Counting {
    fn wake(self: std::sync::Arc<Self>) {
        self.0.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::sync::atomic::Ordering;

    use super::*;

    /// A task that stops waiting lets its waker go at once, and the next task to wait takes
    /// its place: the list holds no more than the tasks waiting at once.
    #[test]
    fn a_task_that_stops_waiting_is_let_go_and_its_place_reused() {
        let waiters = Waiters::default();
        let tasks: Vec<Arc<Counting>> = (0..10).map(|_| Arc::default()).collect();
        let mut registrations = vec![None; 10];
        for (task, at) in tasks.iter().zip(&mut registrations) {
            waiters.register(at, &Context::from_waker(&Waker::from(task.clone())));
        }
        for at in &mut registrations[..5] {
            waiters.unregister(at);
        }
        assert!(
            tasks[..5].iter().all(|t| Arc::strong_count(t) == 1),
            "a task that stopped waiting is no longer held"
        );
        for _ in 0..5 {
            let newcomer = Arc::new(Counting::default());
            waiters.register(&mut None, &Context::from_waker(&Waker::from(newcomer)));
        }
        assert_eq!(waiters.len(), 10, "the newcomers took the places given up");
        waiters.wake_all();
        assert!(tasks[..5].iter().all(|t| t.0.load(Ordering::SeqCst) == 0));
        assert!(tasks[5..].iter().all(|t| t.0.load(Ordering::SeqCst) == 1));
    }

    /// A task polled many times between two wake-ups is in the list once, and woken once.
    #[test]
    fn a_task_registers_once_per_wake_up_however_often_it_is_polled() {
        let waiters = Waiters::default();
        let tasks: Vec<Arc<Counting>> = (0..10).map(|_| Arc::default()).collect();
        let mut registrations = vec![None; 10];
        for round in 1..=3 {
            for _ in 0..5 {
                for (task, at) in tasks.iter().zip(&mut registrations) {
                    let waker = Waker::from(task.clone());
                    waiters.register(at, &Context::from_waker(&waker));
                }
            }
            assert_eq!(waiters.len(), 10);
            waiters.wake_all();
            assert_eq!(waiters.len(), 0);
            assert!(tasks.iter().all(|t| t.0.load(Ordering::SeqCst) == round));
        }
    }
}
