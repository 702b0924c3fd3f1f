//! SQLite's own page cache, with one commit-time scan taken out on databases under 1 GB.
//!
//! At the end of every write transaction the pager asks its page cache to drop any page
//! numbered past the end of the database (`xTruncate`). SQLite's cache (`pcache1`) skips
//! the work when no page it ever held was numbered that high, and otherwise walks its
//! whole hash table: with the report writer's 64 MB cache, 16,384 page headers, cold in
//! the CPU's caches. The B-tree balancer, sorting a node's new siblings by page number,
//! parks a page for a moment under the number of the lock-byte page (page 262,145 at 4 kB
//! pages: the page holding byte 2^30, which SQLite never uses for data), and `pcache1`
//! remembers that number as the highest it held. On a database of under 1 GB that number
//! is past the end, so nearly every commit of the report writer paid for the walk: 9.8 %
//! of the server's CPU and over a third of the writer's time at 5,000 reports/s on a fresh
//! database (BENCHMARKS.md, session 9). On a larger database the number is inside it and
//! the walk never happens.
//!
//! [`install`] puts a thin layer over the default cache that keeps its own account of the
//! highest page number held, not counting pages parked under the lock-byte page number
//! (they are counted apart, and moved on before the commit), and passes `xTruncate` on
//! only when a page could be past the limit. Every other call goes to `pcache1` unchanged.
//! The account is kept in [`Highest`], a plain type tested on its own.
//!
//! SQLite takes a page cache only before it initializes, so `install` must run before the
//! process opens any database, while it has one thread: the server's `main` and the
//! benches call it first thing. Where SQLite is already running, it changes nothing.
#![allow(unsafe_code)]

use std::ffi::{c_int, c_uint, c_void};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::OnceLock;

use libsqlite3_sys as ffi;

/// The byte SQLite's file locks use, and so never holds data (`PENDING_BYTE`).
const PENDING_BYTE: u32 = 0x4000_0000;

/// Truncate calls passed to `pcache1` and left out, since the process started.
static FORWARDED: AtomicU64 = AtomicU64::new(0);
static SKIPPED: AtomicU64 = AtomicU64::new(0);

/// How many of the page caches' truncate calls were passed on and how many were left out,
/// since [`install`].
pub fn truncates() -> (u64, u64) {
    (
        FORWARDED.load(Ordering::Relaxed),
        SKIPPED.load(Ordering::Relaxed),
    )
}

/// One cache's highest page number held, for deciding whether a truncate has anything to
/// drop. Conservative: it may say a truncate is needed when none is, never the reverse.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Highest {
    /// The lock-byte page's number, under which the balancer parks pages.
    parking: u32,
    /// At least the highest number of any page held, parked pages aside.
    max: u32,
    /// Pages moved to `parking` and not yet moved on.
    parked: u32,
    /// A page was made at `parking` itself (SQLite does not do that): pass everything on
    /// until a truncate drops it.
    unsure: bool,
}

impl Highest {
    pub fn new(page_size: u32) -> Highest {
        Highest {
            parking: PENDING_BYTE / page_size.max(1) + 1,
            max: 0,
            parked: 0,
            unsure: false,
        }
    }

    /// A fetch of `key`; only one that may create the page (`create`) can add a page.
    pub fn fetched(&mut self, key: u32, create: bool) {
        if !create {
            return;
        }
        if key == self.parking {
            self.unsure = true;
        } else {
            self.max = self.max.max(key);
        }
    }

    /// A page moved from `old` to `new`.
    pub fn rekeyed(&mut self, old: u32, new: u32) {
        if old == self.parking {
            self.parked = self.parked.saturating_sub(1);
        }
        if new == self.parking {
            self.parked = self.parked.saturating_add(1);
        } else {
            self.max = self.max.max(new);
        }
    }

    /// Whether a truncate to `limit` (drop pages numbered `limit` and up) may drop a page.
    pub fn must_truncate(&self, limit: u32) -> bool {
        self.unsure || self.parked > 0 || self.max >= limit
    }

    /// After a truncate to `limit` was passed on: no page at `limit` or above is left.
    pub fn truncated(&mut self, limit: u32) {
        self.max = self.max.min(limit.saturating_sub(1));
        if self.parking >= limit {
            self.parked = 0;
            self.unsure = false;
        }
    }
}

/// A cache of this layer: `pcache1`'s, and the account kept beside it.
struct Cache {
    inner: *mut ffi::sqlite3_pcache,
    highest: Highest,
}

/// The default page cache's methods, saved by [`install`].
struct DefaultMethods(ffi::sqlite3_pcache_methods2);

// SAFETY: the methods are plain function pointers and `pArg`, which SQLite hands to
// `xInit`/`xShutdown` only; they are written once, before any use, and then only read.
unsafe impl Send for DefaultMethods {}
// SAFETY: as above.
unsafe impl Sync for DefaultMethods {}

static DEFAULT: OnceLock<DefaultMethods> = OnceLock::new();
static INSTALLED: OnceLock<bool> = OnceLock::new();

/// Puts this layer over SQLite's default page cache, once per process; whether it is in
/// place. Must run before the process opens a database, while no other thread uses SQLite.
pub fn install() -> bool {
    *INSTALLED.get_or_init(|| {
        let mut default = std::mem::MaybeUninit::<ffi::sqlite3_pcache_methods2>::zeroed();
        // SAFETY: GETPCACHE2 writes the current methods into the struct passed; it fails
        // (SQLITE_MISUSE) without writing once SQLite is initialized.
        let rc =
            unsafe { ffi::sqlite3_config(ffi::SQLITE_CONFIG_GETPCACHE2, default.as_mut_ptr()) };
        if rc != ffi::SQLITE_OK {
            tracing::debug!(
                rc,
                "SQLite already running: its page cache is left as it is"
            );
            return false;
        }
        // SAFETY: written by the successful call above (and zeroed before it).
        let default = unsafe { default.assume_init() };
        let complete = default.xCreate.is_some()
            && default.xCachesize.is_some()
            && default.xPagecount.is_some()
            && default.xFetch.is_some()
            && default.xUnpin.is_some()
            && default.xRekey.is_some()
            && default.xTruncate.is_some()
            && default.xDestroy.is_some();
        if !complete || DEFAULT.set(DefaultMethods(default)).is_err() {
            return false;
        }
        let ours = ffi::sqlite3_pcache_methods2 {
            iVersion: 1,
            pArg: std::ptr::null_mut(),
            xInit: Some(x_init),
            xShutdown: Some(x_shutdown),
            xCreate: Some(x_create),
            xCachesize: Some(x_cachesize),
            xPagecount: Some(x_pagecount),
            xFetch: Some(x_fetch),
            xUnpin: Some(x_unpin),
            xRekey: Some(x_rekey),
            xTruncate: Some(x_truncate),
            xDestroy: Some(x_destroy),
            xShrink: Some(x_shrink),
        };
        // SAFETY: SQLite copies the struct; its functions are 'static and forward to the
        // default methods saved above.
        let rc = unsafe { ffi::sqlite3_config(ffi::SQLITE_CONFIG_PCACHE2, &ours) };
        rc == ffi::SQLITE_OK
    })
}

fn default() -> &'static ffi::sqlite3_pcache_methods2 {
    // Set before `sqlite3_config` hands SQLite these functions, so always present here.
    match DEFAULT.get() {
        Some(d) => &d.0,
        None => std::process::abort(),
    }
}

/// The `pcache1` handle and account behind a handle this layer gave out.
///
/// # Safety
/// `p` must come from [`x_create`] and not yet be destroyed, and SQLite must not be in
/// another call on the same cache: it calls a cache's methods from its one pager, under
/// that connection's use by one thread at a time.
unsafe fn cache<'a>(p: *mut ffi::sqlite3_pcache) -> &'a mut Cache {
    // SAFETY: per the function's contract.
    unsafe { &mut *p.cast::<Cache>() }
}

unsafe extern "C" fn x_init(_: *mut c_void) -> c_int {
    let d = default();
    match d.xInit {
        // SAFETY: the default method, with the argument SQLite gave it.
        Some(f) => unsafe { f(d.pArg) },
        None => ffi::SQLITE_OK,
    }
}

unsafe extern "C" fn x_shutdown(_: *mut c_void) {
    let d = default();
    if let Some(f) = d.xShutdown {
        // SAFETY: as in `x_init`.
        unsafe { f(d.pArg) }
    }
}

unsafe extern "C" fn x_create(
    page_size: c_int,
    extra: c_int,
    purgeable: c_int,
) -> *mut ffi::sqlite3_pcache {
    let Some(create) = default().xCreate else {
        return std::ptr::null_mut();
    };
    // SAFETY: the default method, with SQLite's own arguments.
    let inner = unsafe { create(page_size, extra, purgeable) };
    if inner.is_null() {
        return inner;
    }
    let highest = Highest::new(u32::try_from(page_size).unwrap_or(u32::MAX));
    Box::into_raw(Box::new(Cache { inner, highest })).cast()
}

unsafe extern "C" fn x_cachesize(p: *mut ffi::sqlite3_pcache, n: c_int) {
    if let Some(f) = default().xCachesize {
        // SAFETY: `p` is one of ours (SQLite's contract); its inner cache is live.
        unsafe { f(cache(p).inner, n) }
    }
}

unsafe extern "C" fn x_pagecount(p: *mut ffi::sqlite3_pcache) -> c_int {
    match default().xPagecount {
        // SAFETY: as in `x_cachesize`.
        Some(f) => unsafe { f(cache(p).inner) },
        None => 0,
    }
}

unsafe extern "C" fn x_fetch(
    p: *mut ffi::sqlite3_pcache,
    key: c_uint,
    create: c_int,
) -> *mut ffi::sqlite3_pcache_page {
    let Some(f) = default().xFetch else {
        return std::ptr::null_mut();
    };
    // SAFETY: as in `x_cachesize`.
    let c = unsafe { cache(p) };
    c.highest.fetched(key, create != 0);
    // SAFETY: the default method on the inner cache, with SQLite's arguments.
    unsafe { f(c.inner, key, create) }
}

unsafe extern "C" fn x_unpin(
    p: *mut ffi::sqlite3_pcache,
    page: *mut ffi::sqlite3_pcache_page,
    discard: c_int,
) {
    if let Some(f) = default().xUnpin {
        // SAFETY: as in `x_cachesize`; `page` came from the inner cache.
        unsafe { f(cache(p).inner, page, discard) }
    }
}

unsafe extern "C" fn x_rekey(
    p: *mut ffi::sqlite3_pcache,
    page: *mut ffi::sqlite3_pcache_page,
    old: c_uint,
    new: c_uint,
) {
    if let Some(f) = default().xRekey {
        // SAFETY: as in `x_unpin`.
        let c = unsafe { cache(p) };
        c.highest.rekeyed(old, new);
        // SAFETY: as in `x_unpin`.
        unsafe { f(c.inner, page, old, new) }
    }
}

unsafe extern "C" fn x_truncate(p: *mut ffi::sqlite3_pcache, limit: c_uint) {
    let Some(f) = default().xTruncate else {
        return;
    };
    // SAFETY: as in `x_cachesize`.
    let c = unsafe { cache(p) };
    if !c.highest.must_truncate(limit) {
        SKIPPED.fetch_add(1, Ordering::Relaxed);
        return;
    }
    FORWARDED.fetch_add(1, Ordering::Relaxed);
    // SAFETY: the default method on the inner cache.
    unsafe { f(c.inner, limit) };
    c.highest.truncated(limit);
}

unsafe extern "C" fn x_destroy(p: *mut ffi::sqlite3_pcache) {
    if p.is_null() {
        return;
    }
    // SAFETY: `p` came from `Box::into_raw` in `x_create`, and SQLite destroys a cache
    // once, after its last use.
    let c = unsafe { Box::from_raw(p.cast::<Cache>()) };
    if let Some(f) = default().xDestroy {
        // SAFETY: the inner cache is live until this call.
        unsafe { f(c.inner) }
    }
}

unsafe extern "C" fn x_shrink(p: *mut ffi::sqlite3_pcache) {
    if let Some(f) = default().xShrink {
        // SAFETY: as in `x_cachesize`.
        unsafe { f(cache(p).inner) }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const PARKING: u32 = 262_145;

    #[test]
    fn the_parking_number_is_the_lock_byte_page() {
        assert_eq!(Highest::new(4096).parking, PARKING);
        assert_eq!(Highest::new(65536).parking, 16_385);
        assert_eq!(Highest::new(512).parking, 2_097_153);
    }

    #[test]
    fn a_balance_that_parks_a_page_and_moves_it_on_needs_no_truncate() {
        let mut h = Highest::new(4096);
        for key in 1..=500 {
            h.fetched(key, true);
        }
        // What `balance_nonroot` does to swap two siblings' numbers, as SQLite's page
        // cache sees it: a look for a page already at the new number, then the move.
        h.fetched(PARKING, false);
        h.rekeyed(40, PARKING);
        assert!(h.must_truncate(501), "a page is parked past the end");
        h.fetched(40, false);
        h.rekeyed(90, 40);
        h.fetched(90, false);
        h.rekeyed(PARKING, 90);
        assert!(!h.must_truncate(501));
        assert!(h.must_truncate(500), "page 500 is past a limit of 500");
    }

    #[test]
    fn a_page_past_the_limit_is_truncated_and_then_forgotten() {
        let mut h = Highest::new(4096);
        h.fetched(10, true);
        h.fetched(12, true);
        assert!(h.must_truncate(11), "a rolled-back growth leaves page 12");
        h.truncated(11);
        assert!(!h.must_truncate(11));
        h.rekeyed(3, 20);
        assert!(h.must_truncate(11), "a move counts like a fetch");
        // Looking a page up without creating it adds nothing.
        let before = h.clone();
        h.fetched(5_000, false);
        assert_eq!(h, before);
    }

    #[test]
    fn anything_unexpected_at_the_parking_number_passes_every_truncate_on() {
        let mut h = Highest::new(4096);
        h.fetched(PARKING, true);
        assert!(h.must_truncate(10));
        h.truncated(10);
        assert!(!h.must_truncate(10), "dropped with the truncate");
        // A parked page that is never moved on keeps every truncate passed on until one
        // drops it; one below the parking number does not.
        h.rekeyed(5, PARKING);
        h.truncated(PARKING + 1);
        assert!(h.must_truncate(10));
        h.truncated(10);
        assert!(!h.must_truncate(10));
    }
}
