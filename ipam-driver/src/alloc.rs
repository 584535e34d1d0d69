//! The address allocator of one pool: which addresses are held, by what kind of holder, and
//! which address is handed out next. Pure data, no I/O: every mutation is first *planned* as a
//! [`Change`] (the exact run records to write), the caller persists it, then [`Allocator::apply`]s
//! it. Memory and store therefore always hold the same runs.
//!
//! Held addresses are kept as maximal runs of consecutive addresses of one kind (an interval
//! set in a `BTreeMap` keyed by the run's first address), so a /8 or a /64 costs nothing up
//! front and serial allocation of a million addresses is one run. A serial cursor remembers
//! where the last dynamic allocation stopped, so a just-released address is not reused at once.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// Who holds an address (as far as the plugin can tell from dockerd's requests).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Kind {
    /// The network's gateway (`RequestAddressType=com.docker.network.gateway`).
    #[serde(rename = "gateway")]
    Gateway,
    /// An `--aux-address` reservation (a specific address asked for while the network is created).
    #[serde(rename = "aux")]
    Aux,
    /// A container endpoint with a specific address (`--ip`).
    #[serde(rename = "container-ip")]
    Static,
    /// A container endpoint with an address chosen by the plugin.
    #[serde(rename = "container")]
    Dynamic,
}

impl Kind {
    /// One byte for the store.
    pub fn code(self) -> u8 {
        match self {
            Kind::Gateway => 1,
            Kind::Aux => 2,
            Kind::Static => 3,
            Kind::Dynamic => 4,
        }
    }

    /// Inverse of [`Kind::code`].
    pub fn from_code(c: u8) -> Option<Self> {
        match c {
            1 => Some(Kind::Gateway),
            2 => Some(Kind::Aux),
            3 => Some(Kind::Static),
            4 => Some(Kind::Dynamic),
            _ => None,
        }
    }

    /// The name shown to operators.
    pub fn name(self) -> &'static str {
        match self {
            Kind::Gateway => "gateway",
            Kind::Aux => "aux",
            Kind::Static => "container-ip",
            Kind::Dynamic => "container",
        }
    }
}

/// How the next dynamic address is chosen.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Order {
    /// Continue after the last handed-out address, wrapping at the end of the range.
    #[default]
    Serial,
    /// The lowest free address.
    Lowest,
}

/// A run of consecutive held addresses of one kind, from its key up to `end` inclusive.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Run {
    /// Last address of the run (inclusive).
    pub end: u128,
    /// Holder kind of every address in the run.
    pub kind: Kind,
}

/// One record change: put a run under its first address, or delete the run starting there.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Op {
    /// Insert or replace the run starting at the address.
    Put(u128, Run),
    /// Delete the run starting at the address.
    Del(u128),
}

/// A planned mutation: run records to write, in order, and the new cursor if it moves.
///
/// Ops are ordered so that every prefix of them, applied to the stored runs, describes a held
/// set containing everything held both before and after the change (records that grow or add
/// come first, records that shrink or delete last; overlapping records are united on
/// [`Allocator::restore`]). A crash in the middle of writing an unacknowledged change can
/// therefore leak the address being allocated or keep the one being released, but never
/// forget an address that stays held.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Change {
    /// Run records, applied in order.
    pub ops: Vec<Op>,
    /// New serial cursor.
    pub cursor: Option<u128>,
}

/// The fixed geometry of a pool.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Layout {
    /// Network address (never handed out).
    pub net: u128,
    /// Last address of the subnet (IPv4 broadcast, never handed out).
    pub top: u128,
    /// First address that may be held.
    pub first: u128,
    /// Last address that may be held.
    pub last: u128,
    /// Dynamic window (the `--ip-range` cut to `first..=last`): first address.
    pub win_lo: u128,
    /// Dynamic window: last address.
    pub win_hi: u128,
    /// Sorted, disjoint inclusive ranges never handed out dynamically (`reserved` option).
    pub reserved: Vec<(u128, u128)>,
}

/// Why a planned allocation is refused. Addresses are numbers; the caller formats them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AllocError {
    /// Not inside the pool's subnet.
    Outside(u128),
    /// The network or broadcast address.
    NotUsable(u128),
    /// Already held.
    InUse(u128, Kind),
    /// No free address left where dynamic addresses come from.
    Exhausted,
}

/// The in-memory form of a run: the distance from its first to its last address, and the
/// kind. 16 bytes instead of the 32 of a [`Run`], which matters for a badly fragmented held set
/// (a million single-address runs). A run grows one allocation at a time, so its span can never
/// reach 2^64; runs whose span would not fit are simply not merged.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Slot {
    span: u64,
    kind: Kind,
}

impl Slot {
    fn of(start: u128, run: &Run) -> Option<Self> {
        u64::try_from(run.end.checked_sub(start)?)
            .ok()
            .map(|span| Self {
                span,
                kind: run.kind,
            })
    }

    fn run(self, start: u128) -> Run {
        Run {
            end: start + u128::from(self.span),
            kind: self.kind,
        }
    }

    fn len(self) -> u128 {
        u128::from(self.span) + 1
    }
}

/// The held set and cursor of one pool.
#[derive(Debug, Clone)]
pub struct Allocator {
    layout: Layout,
    order: Order,
    held: BTreeMap<u128, Slot>,
    cursor: u128,
    count: u128,
}

/// Whether a run from `start` to `end` can be held as one [`Slot`].
fn fits(start: u128, end: u128) -> bool {
    end.checked_sub(start)
        .is_some_and(|d| d <= u128::from(u64::MAX))
}

impl Allocator {
    /// An allocator with nothing held.
    pub fn new(layout: Layout, order: Order) -> Self {
        let cursor = layout.win_lo;
        Self {
            layout,
            order,
            held: BTreeMap::new(),
            cursor,
            count: 0,
        }
    }

    /// Rebuild from stored runs and cursor. Runs are normalised: overlapping runs (left by a
    /// crash in the middle of a change, see [`Change`]) are united and neighbours of one kind
    /// merged, so the result may differ from the input (the caller then rewrites the store).
    /// Runs outside the usable addresses are refused.
    pub fn restore(
        layout: Layout,
        order: Order,
        cursor: Option<u128>,
        runs: impl IntoIterator<Item = (u128, Run)>,
    ) -> Result<Self, String> {
        let mut a = Self::new(layout, order);
        let mut sorted: Vec<(u128, Run)> = runs.into_iter().collect();
        sorted.sort_by_key(|(s, _)| *s);
        let mut cur: Option<(u128, Run)> = None;
        for (start, run) in sorted {
            if run.end < start
                || start < a.layout.first
                || run.end > a.layout.last
                || !fits(start, run.end)
            {
                return Err(format!("stored run {start:#x}..{:#x} is invalid", run.end));
            }
            cur = match cur {
                Some((cs, mut cr))
                    if start <= cr.end || (start == cr.end + 1 && run.kind == cr.kind) =>
                {
                    let end = cr.end.max(run.end);
                    if fits(cs, end) {
                        cr.end = end;
                        Some((cs, cr))
                    } else if start > cr.end {
                        // Adjacent but too long to be one slot: keep them apart.
                        a.insert_slot(cs, &cr);
                        Some((start, run))
                    } else {
                        return Err(format!("stored runs at {cs:#x} and {start:#x} overlap"));
                    }
                }
                Some((cs, cr)) => {
                    a.insert_slot(cs, &cr);
                    Some((start, run))
                }
                None => Some((start, run)),
            };
        }
        if let Some((cs, cr)) = cur {
            a.insert_slot(cs, &cr);
        }
        if let Some(c) = cursor {
            if c >= a.layout.win_lo && c <= a.layout.win_hi {
                a.cursor = c;
            }
        }
        Ok(a)
    }

    fn insert_slot(&mut self, start: u128, run: &Run) {
        if let Some(slot) = Slot::of(start, run) {
            self.count += slot.len();
            if let Some(old) = self.held.insert(start, slot) {
                self.count -= old.len();
            }
        }
    }

    /// The geometry.
    pub fn layout(&self) -> &Layout {
        &self.layout
    }

    /// The allocation order.
    pub fn order(&self) -> Order {
        self.order
    }

    /// Number of held addresses.
    pub fn held_count(&self) -> u128 {
        self.count
    }

    /// The serial cursor (next candidate for a dynamic allocation).
    pub fn cursor(&self) -> u128 {
        self.cursor
    }

    /// Held runs in address order.
    pub fn runs(&self) -> impl Iterator<Item = (u128, Run)> + '_ {
        self.held.iter().map(|(s, slot)| (*s, slot.run(*s)))
    }

    /// Number of runs.
    pub fn run_count(&self) -> usize {
        self.held.len()
    }

    /// The run holding `a`, if any.
    pub fn holder(&self, a: u128) -> Option<(u128, Run)> {
        self.held
            .range(..=a)
            .next_back()
            .map(|(s, slot)| (*s, slot.run(*s)))
            .filter(|(_, r)| r.end >= a)
    }

    fn reserved_containing(&self, a: u128) -> Option<(u128, u128)> {
        let r = &self.layout.reserved;
        let i = r.partition_point(|(s, _)| *s <= a);
        i.checked_sub(1)
            .and_then(|i| r.get(i))
            .filter(|(_, e)| *e >= a)
            .copied()
    }

    /// First address in `from..=to` that is neither held nor reserved.
    fn search(&self, from: u128, to: u128) -> Option<u128> {
        let mut c = from;
        // Each step jumps past one run or one reserved range, so this ends.
        while c <= to {
            if let Some((_, run)) = self.holder(c) {
                c = run.end.checked_add(1)?;
                continue;
            }
            if let Some((_, e)) = self.reserved_containing(c) {
                c = e.checked_add(1)?;
                continue;
            }
            return Some(c);
        }
        None
    }

    /// Plan holding the specific address `a` for `kind`.
    pub fn plan_take(&self, a: u128, kind: Kind) -> Result<Change, AllocError> {
        let l = &self.layout;
        if a < l.net || a > l.top {
            return Err(AllocError::Outside(a));
        }
        if a < l.first || a > l.last {
            return Err(AllocError::NotUsable(a));
        }
        if let Some((_, run)) = self.holder(a) {
            return Err(AllocError::InUse(a, run.kind));
        }
        Ok(self.plan_insert(a, kind))
    }

    /// Plan the gateway when none was given: the lowest free, unreserved usable address.
    pub fn plan_gateway(&self) -> Result<(u128, Change), AllocError> {
        let a = self
            .search(self.layout.first, self.layout.last)
            .ok_or(AllocError::Exhausted)?;
        Ok((a, self.plan_insert(a, Kind::Gateway)))
    }

    /// Plan the next dynamic address from the window, in the pool's order.
    pub fn plan_next(&self) -> Result<(u128, Change), AllocError> {
        let (lo, hi) = (self.layout.win_lo, self.layout.win_hi);
        let found = match self.order {
            Order::Serial => self.search(self.cursor, hi).or_else(|| {
                self.cursor
                    .checked_sub(1)
                    .filter(|end| *end >= lo)
                    .and_then(|end| self.search(lo, end))
            }),
            Order::Lowest => self.search(lo, hi),
        };
        let a = found.ok_or(AllocError::Exhausted)?;
        let mut change = self.plan_insert(a, Kind::Dynamic);
        let next = match a.checked_add(1) {
            Some(n) if n <= hi => n,
            _ => lo,
        };
        change.cursor = Some(next);
        Ok((a, change))
    }

    /// Plan inserting free address `a`, merging with neighbouring runs of the same kind.
    fn plan_insert(&self, a: u128, kind: Kind) -> Change {
        let prev = a
            .checked_sub(1)
            .and_then(|p| self.held.range(..=p).next_back())
            .map(|(s, slot)| (*s, slot.run(*s)))
            .filter(|(_, r)| Some(r.end) == a.checked_sub(1) && r.kind == kind)
            .map(|(s, _)| s);
        let next = a
            .checked_add(1)
            .and_then(|n| self.held.get(&n).map(|slot| (n, slot.run(n))))
            .filter(|(_, r)| r.kind == kind);
        // Merge only into runs that stay representable (never an issue below 2^64 addresses).
        let prev = prev.filter(|ps| fits(*ps, next.map_or(a, |(_, nr)| nr.end)));
        let next = next.filter(|(_, nr)| fits(prev.unwrap_or(a), nr.end));
        let ops = match (prev, next) {
            (Some(ps), Some((ns, nr))) => vec![Op::Put(ps, Run { end: nr.end, kind }), Op::Del(ns)],
            (Some(ps), None) => vec![Op::Put(ps, Run { end: a, kind })],
            (None, Some((ns, nr))) => vec![Op::Put(a, Run { end: nr.end, kind }), Op::Del(ns)],
            (None, None) => vec![Op::Put(a, Run { end: a, kind })],
        };
        Change { ops, cursor: None }
    }

    /// Plan releasing `a`; `None` when it is not held.
    pub fn plan_release(&self, a: u128) -> Option<Change> {
        let (s, run) = self.holder(a)?;
        let kind = run.kind;
        let ops = if s == run.end {
            vec![Op::Del(s)]
        } else if a == s {
            vec![Op::Put(s + 1, Run { end: run.end, kind }), Op::Del(s)]
        } else if a == run.end {
            vec![Op::Put(s, Run { end: a - 1, kind })]
        } else {
            vec![
                Op::Put(a + 1, Run { end: run.end, kind }),
                Op::Put(s, Run { end: a - 1, kind }),
            ]
        };
        Some(Change { ops, cursor: None })
    }

    /// Apply a change planned on this allocator (after it was persisted).
    pub fn apply(&mut self, change: &Change) {
        for op in &change.ops {
            match *op {
                // Planned runs always fit a slot (plan_insert checks).
                Op::Put(s, run) => self.insert_slot(s, &run),
                Op::Del(s) => {
                    if let Some(old) = self.held.remove(&s) {
                        self.count -= old.len();
                    }
                }
            }
        }
        if let Some(c) = change.cursor {
            self.cursor = c;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use std::collections::BTreeSet;

    /// A /24-like layout: net 0, top 255, usable 1..=254, window `lo..=hi`.
    fn layout(lo: u128, hi: u128, reserved: Vec<(u128, u128)>) -> Layout {
        Layout {
            net: 0,
            top: 255,
            first: 1,
            last: 254,
            win_lo: lo,
            win_hi: hi,
            reserved,
        }
    }

    fn take_next(a: &mut Allocator) -> Result<u128, AllocError> {
        let (x, c) = a.plan_next()?;
        a.apply(&c);
        Ok(x)
    }

    #[test]
    fn serial_with_wrap_and_no_immediate_reuse() {
        let mut a = Allocator::new(layout(10, 13, vec![]), Order::Serial);
        assert_eq!(take_next(&mut a), Ok(10));
        assert_eq!(take_next(&mut a), Ok(11));
        let c = a.plan_release(10).unwrap();
        a.apply(&c);
        // 10 was just released: serial continues at 12, 13, then wraps to 10.
        assert_eq!(take_next(&mut a), Ok(12));
        assert_eq!(take_next(&mut a), Ok(13));
        assert_eq!(take_next(&mut a), Ok(10));
        assert_eq!(take_next(&mut a), Err(AllocError::Exhausted));
        assert_eq!(a.held_count(), 4);
        // One run of four container addresses.
        assert_eq!(a.run_count(), 1);
    }

    #[test]
    fn lowest_reuses_at_once() {
        let mut a = Allocator::new(layout(1, 254, vec![]), Order::Lowest);
        assert_eq!(take_next(&mut a), Ok(1));
        assert_eq!(take_next(&mut a), Ok(2));
        a.apply(&a.plan_release(1).unwrap());
        assert_eq!(take_next(&mut a), Ok(1));
    }

    #[test]
    fn gateway_aux_reserved_are_skipped() {
        let mut a = Allocator::new(layout(1, 254, vec![(3, 5)]), Order::Serial);
        let (g, c) = a.plan_gateway().unwrap();
        assert_eq!(g, 1);
        a.apply(&c);
        a.apply(&a.plan_take(2, Kind::Aux).unwrap());
        assert_eq!(take_next(&mut a), Ok(6));
        // Reserved addresses can still be asked for explicitly.
        a.apply(&a.plan_take(4, Kind::Static).unwrap());
        assert_eq!(
            a.plan_take(4, Kind::Static),
            Err(AllocError::InUse(4, Kind::Static))
        );
        assert_eq!(
            a.plan_take(1, Kind::Static),
            Err(AllocError::InUse(1, Kind::Gateway))
        );
        assert_eq!(a.plan_take(0, Kind::Static), Err(AllocError::NotUsable(0)));
        assert_eq!(
            a.plan_take(255, Kind::Static),
            Err(AllocError::NotUsable(255))
        );
        assert_eq!(
            a.plan_take(256, Kind::Static),
            Err(AllocError::Outside(256))
        );
        let kinds: Vec<Kind> = a.runs().map(|(_, r)| r.kind).collect();
        assert_eq!(
            kinds,
            vec![Kind::Gateway, Kind::Aux, Kind::Static, Kind::Dynamic]
        );
    }

    #[test]
    fn huge_pool_costs_nothing() {
        // A /64: window of 2^64 addresses, allocation is still instant and one run.
        let l = Layout {
            net: 0,
            top: u128::from(u64::MAX),
            first: 1,
            last: u128::from(u64::MAX),
            win_lo: 1,
            win_hi: u128::from(u64::MAX),
            reserved: vec![],
        };
        let mut a = Allocator::new(l, Order::Serial);
        for i in 1..=1000u128 {
            assert_eq!(take_next(&mut a), Ok(i));
        }
        assert_eq!(a.run_count(), 1);
        a.apply(&a.plan_take(u128::from(u64::MAX), Kind::Static).unwrap());
        assert_eq!(a.held_count(), 1001);
    }

    #[test]
    fn restore_normalises_and_refuses_invalid_runs() {
        let run = |end| Run {
            end,
            kind: Kind::Dynamic,
        };
        let l = layout(1, 254, vec![]);
        assert!(Allocator::restore(l.clone(), Order::Serial, None, [(0, run(1))]).is_err());
        assert!(Allocator::restore(l.clone(), Order::Serial, None, [(5, run(4))]).is_err());
        // Overlapping (a crash mid-change) and adjacent runs of one kind become one run.
        let a = Allocator::restore(
            l,
            Order::Serial,
            Some(7),
            [(1, run(5)), (3, run(5)), (6, run(6)), (9, run(9))],
        )
        .unwrap();
        let runs: Vec<_> = a.runs().map(|(s, r)| (s, r.end)).collect();
        assert_eq!(runs, vec![(1, 6), (9, 9)]);
        assert_eq!(a.held_count(), 7);
        assert_eq!(a.cursor(), 7);
    }

    #[derive(Debug, Clone)]
    enum Step {
        Next,
        Take(u128, bool),
        Release(u128),
        Restart,
        /// Crash after writing only the first `.1` ops of a change (a release of `.0`, or the
        /// next allocation when `.0` is not held).
        Crash(u128, usize),
    }

    fn step() -> impl Strategy<Value = Step> {
        prop_oneof![
            4 => Just(Step::Next),
            2 => (0u128..260, any::<bool>()).prop_map(|(a, s)| Step::Take(a, s)),
            3 => (0u128..260).prop_map(Step::Release),
            1 => Just(Step::Restart),
            2 => (0u128..260, 0usize..3).prop_map(|(a, k)| Step::Crash(a, k)),
        ]
    }

    /// Runs are sorted, disjoint, inside the subnet, and neighbours of one kind are merged.
    fn check_invariants(a: &Allocator) {
        let mut prev: Option<(u128, Run)> = None;
        let mut count = 0;
        for (s, r) in a.runs() {
            assert!(s <= r.end && s >= a.layout.first && r.end <= a.layout.last);
            if let Some((_, p)) = prev {
                assert!(p.end < s);
                assert!(!(p.end + 1 == s && p.kind == r.kind), "unmerged neighbours");
            }
            count += r.end - s + 1;
            prev = Some((s, r));
        }
        assert_eq!(count, a.held_count());
    }

    proptest! {
        #[test]
        fn held_set_stays_exact(
            steps in proptest::collection::vec(step(), 1..300),
            lo in 1u128..60, span in 0u128..120, order_lowest in any::<bool>(),
            res in proptest::option::of((1u128..254, 0u128..8)),
        ) {
            let hi = (lo + span).min(254);
            let reserved = res.map(|(s, n)| vec![(s, (s + n).min(254))]).unwrap_or_default();
            let order = if order_lowest { Order::Lowest } else { Order::Serial };
            let l = layout(lo, hi, reserved.clone());
            let mut a = Allocator::new(l.clone(), order);
            let mut model: BTreeSet<u128> = BTreeSet::new();
            for s in steps {
                match s {
                    Step::Next => match a.plan_next() {
                        Ok((x, c)) => {
                            prop_assert!(!model.contains(&x), "duplicate {x}");
                            prop_assert!(x >= lo && x <= hi);
                            prop_assert!(!reserved.iter().any(|(s, e)| x >= *s && x <= *e));
                            a.apply(&c);
                            model.insert(x);
                        }
                        Err(e) => {
                            prop_assert_eq!(e, AllocError::Exhausted);
                            let free = (lo..=hi).any(|x| !model.contains(&x)
                                && !reserved.iter().any(|(s, e)| x >= *s && x <= *e));
                            prop_assert!(!free, "exhausted with free addresses");
                        }
                    },
                    Step::Take(x, stat) => {
                        let kind = if stat { Kind::Static } else { Kind::Aux };
                        match a.plan_take(x, kind) {
                            Ok(c) => {
                                prop_assert!((1..=254).contains(&x) && !model.contains(&x));
                                a.apply(&c);
                                model.insert(x);
                            }
                            Err(_) => prop_assert!(!(1..=254).contains(&x) || model.contains(&x)),
                        }
                    }
                    Step::Release(x) => match a.plan_release(x) {
                        Some(c) => {
                            prop_assert!(model.remove(&x));
                            a.apply(&c);
                        }
                        None => prop_assert!(!model.contains(&x)),
                    },
                    Step::Restart => {
                        let runs: Vec<_> = a.runs().collect();
                        a = Allocator::restore(l.clone(), order, Some(a.cursor()), runs)
                            .map_err(TestCaseError::fail)?;
                    }
                    Step::Crash(x, k) => {
                        let (change, after) = match a.plan_release(x) {
                            Some(c) => {
                                let mut after = model.clone();
                                after.remove(&x);
                                (c, after)
                            }
                            None => match a.plan_next() {
                                Ok((n, c)) => {
                                    let mut after = model.clone();
                                    after.insert(n);
                                    (c, after)
                                }
                                Err(_) => continue,
                            },
                        };
                        // The store as a key/value map: the first k ops reached the disk.
                        let mut stored: BTreeMap<u128, Run> = a.runs().collect();
                        for op in change.ops.iter().take(k) {
                            match *op {
                                Op::Put(s, r) => {
                                    stored.insert(s, r);
                                }
                                Op::Del(s) => {
                                    stored.remove(&s);
                                }
                            }
                        }
                        a = Allocator::restore(l.clone(), order, Some(a.cursor()), stored)
                            .map_err(TestCaseError::fail)?;
                        let held: BTreeSet<u128> = a.runs().flat_map(|(s, r)| s..=r.end).collect();
                        let kept: BTreeSet<u128> = model.intersection(&after).copied().collect();
                        let either: BTreeSet<u128> = model.union(&after).copied().collect();
                        prop_assert!(held.is_superset(&kept), "lost an address that stays held");
                        prop_assert!(held.is_subset(&either), "invented an address");
                        model = held;
                    }
                }
                check_invariants(&a);
                let held: BTreeSet<u128> =
                    a.runs().flat_map(|(s, r)| s..=r.end).collect();
                prop_assert_eq!(&held, &model);
            }
        }
    }
}
