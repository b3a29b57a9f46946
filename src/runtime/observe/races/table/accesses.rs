//! The accesses of a run: where they were made (sites), the last write and reads of each
//! shared location, the check of a new access against them, and the races it finds,
//! counted once per pair of places.

use super::{site_hash, store_text, text, Access, Data, Key, Report, Side};
use super::{CELLS, HELD, LOCKS, READ, SITES, UPDATE, WORKERS, WRITE};
use crate::runtime::sched::{Object, Site};

impl Data {
    pub(super) fn site_index(&mut self, site: &Site) -> u32 {
        if site.line == 0 && site.source.is_none() {
            return 0;
        }
        let hash = site_hash(site);
        let start = (hash as usize) % SITES;
        for i in 0..SITES {
            let index = (start + i) % SITES;
            let entry = &mut self.site[index];
            if entry.hash == hash {
                return index as u32 + 1;
            }
            if entry.hash == 0 {
                entry.hash = hash;
                entry.line = site.line as u32;
                entry.column = site.column as u32;
                entry.len = store_text(&mut entry.source, site.source.as_deref().unwrap_or(""));
                self.sites += 1;
                return index as u32 + 1;
            }
        }
        0
    }

    pub(super) fn site_of(&self, index: u32) -> Site {
        let Some(entry) = (index as usize)
            .checked_sub(1)
            .and_then(|i| self.site.get(i))
        else {
            return Site::default();
        };
        let source = text(&entry.source, entry.len);
        Site {
            source: (!source.is_empty()).then_some(source),
            line: entry.line as usize,
            column: entry.column as usize,
        }
    }

    pub(super) fn location(&mut self, object: &Object) -> Option<usize> {
        let key = Key::of(object);
        let start = key.hash() % CELLS;
        for i in 0..CELLS {
            let index = (start + i) % CELLS;
            let entry = &mut self.cells[index];
            if entry.run == self.run && entry.key == key {
                return Some(index);
            }
            if entry.run != self.run {
                entry.run = self.run;
                entry.key = key;
                entry.write = Access::default();
                entry.reads = [Access::default(); WORKERS];
                return Some(index);
            }
        }
        self.lost.locations += 1;
        None
    }

    pub(super) fn access(&mut self, me: usize, object: &Object, op: u8, site: &Site) {
        let now = Access {
            worker: me as u16,
            op,
            time: self.worker[me].clock.0[me],
            site: self.site_index(site),
            locks: self.worker[me].held,
        };
        let Some(index) = self.location(object) else {
            return;
        };
        let clock = self.worker[me].clock;
        let unordered = |a: &Access| {
            a.time != 0
                && a.worker as usize != me
                && !clock.has_seen(a.worker as usize, a.time)
                && !(a.op == UPDATE && op == UPDATE)
        };
        let last_write = self.cells[index].write;
        let mut found = Vec::new();
        if unordered(&last_write) {
            found.push(last_write);
        }
        if op != READ {
            found.extend(
                self.cells[index]
                    .reads
                    .iter()
                    .filter(|r| unordered(r))
                    .copied(),
            );
        }
        let key = self.cells[index].key;
        for earlier in found {
            self.report(key, earlier, now);
        }
        let cell = &mut self.cells[index];
        if op == READ {
            cell.reads[me] = now;
        } else {
            // Every earlier read is ordered before this write or was reported with it.
            cell.write = now;
            cell.reads = [Access::default(); WORKERS];
        }
    }

    fn side(&self, access: &Access) -> Side {
        let worker = &self.worker[access.worker as usize];
        let mut side = Side {
            op: access.op,
            site: access.site,
            name_len: worker.name_len,
            name: worker.name,
            locks: [Key::default(); HELD],
        };
        let held = (0..LOCKS).filter(|bit| access.locks & (1 << bit) != 0);
        for (slot, bit) in side.locks.iter_mut().zip(held) {
            *slot = self.locks[bit].key;
        }
        side
    }

    /// Counts the race of `second` with `first`, once per pair of sites.
    fn report(&mut self, key: Key, first: Access, second: Access) {
        let pair = |a: &Side, b: &Side| (a.site, a.op.min(WRITE), b.site, b.op.min(WRITE));
        let (a, b) = (self.side(&first), self.side(&second));
        let this = pair(&a, &b);
        let swapped = pair(&b, &a);
        let known = self.report[..self.reports as usize].iter_mut().find(|r| {
            let seen = pair(&r.first, &r.second);
            seen == this || seen == swapped
        });
        if let Some(known) = known {
            known.count += 1;
            return;
        }
        let Some(slot) = self.report.get_mut(self.reports as usize) else {
            self.lost.reports += 1;
            return;
        };
        *slot = Report {
            key,
            first: a,
            second: b,
            count: 1,
        };
        self.reports += 1;
    }
}
