//! Parts kept across reloads by the configuration that made them.
//!
//! A [`Keyed`] maps a part's spec (plain, comparable configuration) to the live part
//! built from it. A reload asks for the part of each spec it uses: an equal spec gets
//! the part that is already running (its counters, keys or connections kept), a new
//! or changed spec a freshly built one. What the new configuration did not ask for is
//! dropped with the previous generation, so unused parts stop (a JWKS refresher ends
//! once its client is gone).

/// Live parts of one kind, by spec. A handful per configuration: a linear scan.
#[derive(Debug)]
pub struct Keyed<K, V> {
    entries: Vec<(K, V)>,
}

impl<K, V> Default for Keyed<K, V> {
    fn default() -> Self {
        Keyed {
            entries: Vec::new(),
        }
    }
}

impl<K: PartialEq + Clone, V: Clone> Keyed<K, V> {
    /// The part of `spec` from the previous generation, else one made now.
    pub fn get_or_make(&self, spec: &K, make: impl FnOnce() -> V) -> (V, bool) {
        match self.entries.iter().find(|(k, _)| k == spec) {
            Some((_, v)) => (v.clone(), true),
            None => (make(), false),
        }
    }

    /// A part of this generation whose spec matches `pred`.
    pub fn find(&self, pred: impl Fn(&K) -> bool) -> Option<V> {
        self.entries
            .iter()
            .find(|(k, _)| pred(k))
            .map(|(_, v)| v.clone())
    }

    /// The parts of the next generation, built with [`Keyed::get_or_make`] from this
    /// one: `next` collects what the new configuration uses.
    pub fn next(&self) -> Next<'_, K, V> {
        Next {
            previous: self,
            kept: Keyed::default(),
            reused: 0,
            built: 0,
        }
    }
}

/// A generation being built from the previous one.
pub struct Next<'a, K, V> {
    previous: &'a Keyed<K, V>,
    kept: Keyed<K, V>,
    /// Parts taken over / made new (logged on reload).
    pub reused: usize,
    pub built: usize,
}

impl<K: PartialEq + Clone, V: Clone> Next<'_, K, V> {
    /// The part for `spec`: the one already in this generation, the previous
    /// generation's, or a new one.
    pub fn get(&mut self, spec: &K, make: impl FnOnce() -> V) -> V {
        if let Some((_, v)) = self.kept.entries.iter().find(|(k, _)| k == spec) {
            return v.clone();
        }
        let (v, reused) = self.previous.get_or_make(spec, make);
        if reused {
            self.reused += 1;
        } else {
            self.built += 1;
        }
        self.kept.entries.push((spec.clone(), v.clone()));
        v
    }

    /// The new generation (the previous one's unused parts are dropped with it).
    pub fn finish(self) -> Keyed<K, V> {
        self.kept
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    #[test]
    fn equal_specs_keep_their_part_changed_ones_get_a_new_one_unused_ones_go() {
        let mut gen: Keyed<&str, Arc<u32>> = Keyed::default();
        let mut next = gen.next();
        let a = next.get(&"a", || Arc::new(1));
        let b = next.get(&"b", || Arc::new(2));
        assert!(
            Arc::ptr_eq(&a, &next.get(&"a", || Arc::new(9))),
            "same generation"
        );
        gen = next.finish();
        let mut next = gen.next();
        let a2 = next.get(&"a", || Arc::new(3));
        let c = next.get(&"c", || Arc::new(4));
        assert!(Arc::ptr_eq(&a, &a2), "unchanged spec: the same part");
        assert_eq!(*c, 4, "new spec: a new part");
        assert_eq!((next.reused, next.built), (1, 1));
        gen = next.finish();
        assert_eq!(
            Arc::strong_count(&b),
            1,
            "b is no longer held by the runtime"
        );
        assert_eq!(gen.entries.len(), 2);
    }
}
