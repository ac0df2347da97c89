//! A bounded grade cache keyed by what the grader reads: the prompt and the completion.
//!
//! RL trainers resend the same completion (retries after a timeout, identical rollouts of a
//! converged policy, several reward calls per step); grading it again costs the same and gives
//! the same answer. The key is the SHA-256 of the messages, so ids, response types and base
//! rewards (which the grader never reads) do not split entries. The bound keeps memory flat in
//! a run of millions of samples: the oldest entry goes first (an entry is ~0.5 KB with the
//! default policy's 23 propositions).

use std::collections::{HashMap, VecDeque};
use std::sync::Mutex;

use arbiter_core::{GradeRecord, Message, Sample};
use sha2::{Digest, Sha256};

/// The cache key of a sample: SHA-256 over its prompt and completion messages, each role and
/// content length-prefixed so no two different conversations share a byte string.
pub fn content_key(sample: &Sample) -> [u8; 32] {
    let mut h = Sha256::new();
    let mut part = |messages: &[Message]| {
        h.update((messages.len() as u64).to_le_bytes());
        for m in messages {
            h.update(m.role.as_str().as_bytes());
            h.update([0]);
            h.update((m.content.len() as u64).to_le_bytes());
            h.update(m.content.as_bytes());
        }
    };
    part(&sample.prompt);
    part(&sample.completion);
    h.finalize().into()
}

/// Grades by content key, at most `capacity` of them, oldest evicted first.
pub struct GradeCache {
    capacity: usize,
    inner: Mutex<Inner>,
}

#[derive(Default)]
struct Inner {
    map: HashMap<[u8; 32], GradeRecord>,
    order: VecDeque<[u8; 32]>,
}

impl GradeCache {
    /// An empty cache holding at most `capacity` grades.
    pub fn new(capacity: usize) -> GradeCache {
        GradeCache {
            capacity: capacity.max(1),
            inner: Mutex::new(Inner::default()),
        }
    }

    /// The grades stored for `key`.
    pub fn get(&self, key: &[u8; 32]) -> Option<GradeRecord> {
        self.lock().map.get(key).cloned()
    }

    /// Store grades under `key`, evicting the oldest entry when full.
    pub fn insert(&self, key: [u8; 32], grades: GradeRecord) {
        let mut inner = self.lock();
        if inner.map.insert(key, grades).is_none() {
            inner.order.push_back(key);
            while inner.order.len() > self.capacity {
                if let Some(old) = inner.order.pop_front() {
                    inner.map.remove(&old);
                }
            }
        }
    }

    /// Entries held.
    pub fn len(&self) -> usize {
        self.lock().map.len()
    }

    /// Whether nothing is held.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        // A panic while holding the lock leaves a consistent map (each operation is one
        // insert or remove pair), so a poisoned lock is still usable.
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use arbiter_core::{Role, SampleId};

    fn sample(prompt: &str, completion: &str) -> Sample {
        Sample {
            id: SampleId::Index(0),
            prompt: vec![Message::new(Role::User, prompt)],
            completion: vec![Message::new(Role::Assistant, completion)],
            response_type: None,
            category: None,
            propositions: Default::default(),
            metadata: Default::default(),
        }
    }

    fn record(p: f64) -> GradeRecord {
        GradeRecord {
            id: SampleId::Index(0),
            propositions: [("x".to_string(), p)].into(),
            flags: Default::default(),
        }
    }

    #[test]
    fn the_key_is_the_content_not_the_id_and_boundaries_count() {
        let a = sample("ab", "c");
        let mut b = a.clone();
        b.id = SampleId::Name("other".into());
        b.metadata.insert("base_reward".into(), 1.0.into());
        assert_eq!(content_key(&a), content_key(&b));
        assert_ne!(content_key(&a), content_key(&sample("a", "bc")));
        assert_ne!(content_key(&a), content_key(&sample("ab", "c ")));
        let mut system = a.clone();
        system.prompt[0].role = Role::System;
        assert_ne!(content_key(&a), content_key(&system));
    }

    #[test]
    fn the_oldest_entry_goes_first_and_reinserting_does_not_grow() {
        let cache = GradeCache::new(2);
        let k = |i: u8| [i; 32];
        cache.insert(k(1), record(0.1));
        cache.insert(k(2), record(0.2));
        cache.insert(k(2), record(0.25));
        assert_eq!(cache.len(), 2);
        cache.insert(k(3), record(0.3));
        assert_eq!(cache.len(), 2);
        assert!(cache.get(&k(1)).is_none());
        assert_eq!(cache.get(&k(2)).unwrap().propositions["x"], 0.25);
        assert_eq!(cache.get(&k(3)).unwrap().propositions["x"], 0.3);
    }
}
