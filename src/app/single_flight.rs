//! Single flight by key inside one process: the first caller leads the work, every caller
//! that comes while it runs waits for the leader's outcome instead of doing it again.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};
use tokio::sync::watch;

/// Flights in progress, by key; a key is forgotten once its flight lands.
pub(crate) struct Flights<T: Clone> {
    running: Arc<Mutex<HashMap<String, watch::Receiver<Option<T>>>>>,
}

impl<T: Clone> Default for Flights<T> {
    fn default() -> Self {
        Flights {
            running: Arc::default(),
        }
    }
}

/// What a caller of [`Flights::join`] is to do.
pub(crate) enum Role<T: Clone> {
    /// Do the work, then [`Flight::land`] with its outcome.
    Lead(Flight<T>),
    /// Wait for the leader with [`Role::outcome`].
    Follow(watch::Receiver<Option<T>>),
}

/// The leader's side of a flight; dropped without landing (the leader was cancelled), its
/// followers are told to try again.
pub(crate) struct Flight<T: Clone> {
    key: String,
    sender: watch::Sender<Option<T>>,
    running: Arc<Mutex<HashMap<String, watch::Receiver<Option<T>>>>>,
}

impl<T: Clone> Flights<T> {
    /// Leads the flight of `key`, or follows the one in progress.
    pub(crate) fn join(&self, key: &str) -> Role<T> {
        // The map holds no invariant a panic could break: a poisoned lock is still usable.
        let mut running = self.running.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(receiver) = running.get(key) {
            if receiver.has_changed().is_ok() {
                return Role::Follow(receiver.clone());
            }
        }
        let (sender, receiver) = watch::channel(None);
        running.insert(key.to_owned(), receiver);
        Role::Lead(Flight {
            key: key.to_owned(),
            sender,
            running: self.running.clone(),
        })
    }
}

impl<T: Clone> Role<T> {
    /// A follower's outcome: the leader's, or `None` when the leader went away without
    /// one (the caller joins again and may lead).
    pub(crate) async fn outcome(receiver: &mut watch::Receiver<Option<T>>) -> Option<T> {
        let landed = receiver.wait_for(Option::is_some).await.ok()?;
        landed.clone()
    }
}

impl<T: Clone> Flight<T> {
    /// Gives every follower the outcome and ends the flight: a later caller leads anew.
    pub(crate) fn land(self, outcome: T) {
        self.forget();
        let _ = self.sender.send(Some(outcome));
    }

    fn forget(&self) {
        let mut running = self.running.lock().unwrap_or_else(PoisonError::into_inner);
        // Only this flight's entry: a newer flight of the key may have replaced it.
        if running
            .get(&self.key)
            .is_some_and(|r| r.same_channel(&self.sender.subscribe()))
        {
            running.remove(&self.key);
        }
    }
}

impl<T: Clone> Drop for Flight<T> {
    fn drop(&mut self) {
        // Landed or not, the flight is over; followers of one that never landed see the
        // sender gone and join again.
        self.forget();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn followers_get_the_leaders_outcome_and_a_later_caller_leads_anew() {
        let flights = Flights::<u32>::default();
        let Role::Lead(flight) = flights.join("a") else {
            panic!("the first caller leads")
        };
        let Role::Follow(mut one) = flights.join("a") else {
            panic!("a second caller follows")
        };
        let Role::Follow(mut two) = flights.join("a") else {
            panic!("a third caller follows")
        };
        assert!(matches!(flights.join("b"), Role::Lead(_)), "keys are apart");
        flight.land(7);
        assert_eq!(Role::outcome(&mut one).await, Some(7));
        assert_eq!(Role::outcome(&mut two).await, Some(7));
        assert!(
            matches!(flights.join("a"), Role::Lead(_)),
            "landed: a new flight"
        );
    }

    #[tokio::test]
    async fn followers_of_a_leader_that_went_away_are_told_to_try_again() {
        let flights = Flights::<u32>::default();
        let Role::Lead(flight) = flights.join("a") else {
            panic!("the first caller leads")
        };
        let Role::Follow(mut follower) = flights.join("a") else {
            panic!("a second caller follows")
        };
        drop(flight);
        assert_eq!(Role::outcome(&mut follower).await, None);
        assert!(matches!(flights.join("a"), Role::Lead(_)));
    }
}
